"""The JAX versions lecture6 runs on: an older JAX is refused at import in one line, and a compile option
that this XLA does not know is dropped rather than failing a program."""

import os
import subprocess
import sys

import pytest

import lecture6
from lecture6 import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("versions", [{"jax": "0.9.2", "jaxlib": "0.9.2"}, {"jax": "0.10.2", "jaxlib": "0.4.38"},
                                      {"jax": "0.10.0", "jaxlib": "not installed"}])
def test_a_jax_older_than_supported_is_refused_naming_both_versions(versions):
    with pytest.raises(ImportError) as info:
        lecture6.check_jax_version(versions)
    message = str(info.value)
    assert "\n" not in message
    assert "jax>=0.10" in message
    for name, version in versions.items():
        assert f"{name} {version}" in message


@pytest.mark.parametrize("version", ["0.10.0", "0.10.2", "0.11.2", "0.12.0.1", "0.12.1", "0.13.0rc1", "1.0"])
def test_supported_and_newer_versions_pass(version):
    lecture6.check_jax_version({"jax": version, "jaxlib": version})


def test_importing_lecture6_with_an_old_jax_installed_fails_in_one_line(tmp_path):
    """End to end: a jax 0.9.2 distribution found first on the path makes ``import lecture6`` raise its one
    line (jax itself is never imported, so XLA has no chance to abort)."""
    for name in ("jax", "jaxlib"):
        info = tmp_path / f"{name}-0.9.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.9.2\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    p = subprocess.run([sys.executable, "-c", "import lecture6"], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=60, check=False)
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: lecture6 needs jax and jaxlib >= 0.10"), p.stderr
    assert "jax 0.9.2, jaxlib 0.9.2" in last


def test_a_compiler_option_this_xla_does_not_know_is_dropped():
    assert runs.accepted_compiler_options({"xla_no_such_option_anywhere": True}) == {}
    known = {"xla_backend_optimization_level": 1}
    assert runs.accepted_compiler_options(known) == known
