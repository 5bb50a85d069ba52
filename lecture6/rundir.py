"""Run directories for the scripts: Python config files, command-line overrides, atomic workdirs.

Every script under ``scripts/`` reads a config file (``get_config()`` returning an
``ml_collections.ConfigDict``), accepts ``--config.<field>=value`` overrides, and writes its outputs
into a workdir that appears only when complete: a workdir that exists is a finished run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile

# ---------------------------------------------------------------------------------------------------
# Config files and command-line overrides
# ---------------------------------------------------------------------------------------------------


def load_config_file(path: str):
    """``get_config()`` of a Python config file."""
    spec = importlib.util.spec_from_file_location("_lecture6_config", path)
    if spec is None or not os.path.exists(path):
        raise ValueError(f"config file {path!r} not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def check_overrides(argv: list[str], default_config: str) -> None:
    """Exit with a clear message if a ``--config.<field>=...`` names a field the config file lacks.

    ml_collections reports an unknown field as a long traceback; this check runs first and names
    the field, the value and the known fields instead.
    """
    path = default_config
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            path = a.split("=", 1)[1]
        elif a == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
    try:
        fields = set(load_config_file(path).keys())
    except (ValueError, OSError) as exc:
        sys.exit(f"error: {exc}")
    for a in argv:
        if a.startswith("--config."):
            name, _, _value = a[len("--config."):].partition("=")
            if name.split(".")[0] not in fields:
                sys.exit(f"error: unknown config field config.{name} (given {a!r}); "
                         f"known fields: {', '.join(sorted(fields))}")


# ---------------------------------------------------------------------------------------------------
# Writing a workdir atomically
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_workdir(workdir: str):
    """Yield a temporary directory beside ``workdir``; on success it replaces ``workdir``.

    On an exception the temporary directory is removed and an existing ``workdir`` is left as it was.
    """
    workdir = os.path.abspath(workdir)
    parent = os.path.dirname(workdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(workdir)}.tmp-", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(workdir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(workdir)}.old-", dir=parent)
        os.replace(workdir, os.path.join(old, "run"))
    os.replace(tmp, workdir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON with a final newline."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def check_config_keys(config, default_config: str) -> None:
    """Raise ``ValueError`` if ``config`` has fields the default config file lacks, or lacks some of its fields.

    A typo in a config file (``learning_rat``) must not silently fall back to a default.
    """
    expected = set(load_config_file(default_config).keys())
    got = set(config.keys())
    if got - expected:
        raise ValueError(f"unknown config keys {sorted(got - expected)}; known keys: {sorted(expected)}")
    if expected - got:
        raise ValueError(f"config is missing keys {sorted(expected - got)}")


def script_main(run, default_config: str, default_workdir: str) -> None:
    """The whole body of a script under ``scripts/``: flags, config, one call, clear errors.

    Flags: ``--config FILE`` (default ``default_config``), ``--config.<field>=value`` overrides (an
    unknown field exits with a one-line message naming it), ``--workdir DIR``. Calls
    ``run(config, workdir, log=print)``; a ``ValueError`` (a bad config value, bad data) or
    ``TrainingDiverged`` (every run diverged; the workdir is still written) exits non-zero with its
    message instead of a traceback.
    """
    from absl import app, flags, logging
    from ml_collections import config_flags

    # Before the flag is defined: ml_collections applies --config.<field> overrides while defining it,
    # and reports an unknown field as a long traceback.
    check_overrides(sys.argv[1:], default_config)
    config_flag = config_flags.DEFINE_config_file("config", default_config, "config file (get_config())")
    workdir_flag = flags.DEFINE_string("workdir", default_workdir, "output directory (replaced atomically)")

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        logging.set_verbosity(logging.WARNING)  # keep JAX's backend INFO lines out of the progress output
        from lecture6.train import TrainingDiverged

        try:
            run(config_flag.value, workdir_flag.value, log=lambda msg: print(msg, flush=True))
        except (ValueError, TrainingDiverged) as exc:
            sys.exit(f"error: {exc}")

    app.run(main)
