"""Lecture 6 as verified JAX code."""

import re
from importlib import metadata as _metadata

__version__ = "0.1.0"

#: The oldest jax and jaxlib this package is verified with (``make test``); ``make test-latest`` verifies the
#: newest, pinned in ``constraints-latest.txt``. Read from the installed distributions, so that a JAX that is
#: too old is refused here, in one line, before it is imported (and before XLA can abort on anything).
OLDEST_JAX = (0, 10)


def _release(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: "0.12.0.1" -> (0, 12, 0, 1), "0.11.0rc1" -> (0, 11, 0)."""
    found = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(p) for p in found.group(0).split(".")) if found else ()


def check_jax_version(versions: dict[str, str] | None = None) -> None:
    """Raise ``ImportError`` (one line naming what is installed and what is needed) if jax or jaxlib is older
    than :data:`OLDEST_JAX`. ``versions`` maps distribution name to version; by default the installed ones."""
    if versions is None:
        versions = {}
        for name in ("jax", "jaxlib"):
            try:
                versions[name] = _metadata.version(name)
            except _metadata.PackageNotFoundError:
                versions[name] = "not installed"
    need = ".".join(map(str, OLDEST_JAX))
    for version in versions.values():
        if version == "not installed" or _release(version) < OLDEST_JAX:
            found = ", ".join(f"{n} {v}" for n, v in versions.items())
            raise ImportError(f"lecture6 needs jax and jaxlib >= {need} (verified through the versions in "
                              f"constraints-latest.txt); found {found}: pip install --upgrade 'jax>={need}' "
                              f"'jaxlib>={need}'")


check_jax_version()
