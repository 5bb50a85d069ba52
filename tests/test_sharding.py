"""Several devices and several processes give the one-device results.

The multi-device checks run in subprocesses (tests/multidevice_checks.py) so that this process keeps one
device: one process with 4 CPU devices, and 2 processes x 2 devices under ``lecture6.launch`` (one launch
for all the multi-process checks). Their results are compared here with references computed
independently: NumPy's BLAS route of :mod:`lecture6.ppca` on all rows in one process, and ``np.cov``.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import multidevice_checks as checks
import numpy as np
import pytest

from lecture6 import ppca

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKS = os.path.join(ROOT, "tests", "multidevice_checks.py")
TOL = 1e-12  # float64: the sharded sums differ from one device's only in the order of the additions


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LECTURE6_")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


def _launch(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "lecture6.launch", *args], capture_output=True, text=True,
                          cwd=ROOT, env=_env(), timeout=timeout, check=False)


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    out = tmp_path_factory.mktemp("four_devices")
    p = subprocess.run([sys.executable, CHECKS, str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"), check=False)
    assert p.returncode == 0, p.stderr
    return dict(np.load(out / "results.npz"))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_processes")
    p = _launch("--processes", "2", "--devices-per-process", "2", "--timeout", "100", "--", CHECKS, str(out))
    assert p.returncode == 0, p.stderr
    assert os.listdir(out) == ["results.npz"]  # process 0 alone wrote, and nothing temporary is left
    return dict(np.load(out / "results.npz"))


@pytest.fixture(scope="module")
def reference():
    """All rows, one process, NumPy's route: the results any device layout must reproduce."""
    X = checks.make_data()
    out = {}
    for name, rows in (("even", X[:checks.N_EVEN]), ("odd", X)):
        model = ppca.fit_closed_form(rows, checks.Q)
        out.update({f"{name}_W": np.asarray(model.W), f"{name}_b": np.asarray(model.b),
                    f"{name}_sigma2": float(model.sigma2),
                    f"{name}_ll": float(np.mean(np.asarray(ppca.log_likelihood(model, rows))))})
    out["odd_S"] = np.cov(X, rowvar=False, bias=True)
    out["odd_mean"] = X.mean(axis=0)
    return out


def _assert_fit_equal(got, ref, name):
    for part in ("W", "b", "sigma2", "ll"):
        np.testing.assert_allclose(got[f"{name}_{part}"], ref[f"{name}_{part}"], rtol=TOL, atol=TOL,
                                   err_msg=f"{name}_{part}")


@pytest.mark.parametrize("layout", ["four_devices", "two_processes"])
def test_ppca_on_rows_split_over_devices_equals_one_device(layout, reference, request):
    got = request.getfixturevalue(layout)
    assert int(got["device_count"]) == 4
    assert got["even_rows_per_shard"].tolist() == [50] * int(got["local_device_count"])  # really split
    assert bool(got["even_W_replicated"])
    _assert_fit_equal(got, reference, "even")
    np.testing.assert_allclose(got["even_jit_W"], reference["even_W"], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("layout", ["four_devices", "two_processes"])
def test_padded_rows_are_masked_out_of_the_fit(layout, reference, request):
    got = request.getfixturevalue(layout)
    assert int(got["padded_rows"]) == 204  # 203 rows padded to a multiple of 4 devices
    np.testing.assert_allclose(got["odd_mean"], reference["odd_mean"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(got["odd_S"], reference["odd_S"], rtol=TOL, atol=TOL)
    _assert_fit_equal(got, reference, "odd")


def test_a_row_count_the_mesh_does_not_divide_is_refused_by_name(four_devices):
    message = str(four_devices["refusal"])
    assert "n=203 rows" in message and "4 devices" in message and "'data'" in message
    assert "200" in message and "204" in message and "shard_rows_padded" in message


def test_two_processes_each_feed_their_own_rows(two_processes):
    assert int(two_processes["process_count"]) == 2 and int(two_processes["local_device_count"]) == 2
    # 203 rows padded to 204 = 4 devices x 51: process 0 feeds rows 0..101, process 1 the other 101.
    assert two_processes["process_rows"].tolist() == [0, 102]


def test_launcher_refuses_a_busy_coordinator_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = _launch("--processes", "2", "--port", str(port), "--", "-c", "print('started')", timeout=30)
    assert p.returncode == 2
    assert f"coordinator port 127.0.0.1:{port} is busy" in p.stderr
    assert "started" not in p.stdout  # nothing was started


def test_launcher_stops_every_process_when_one_dies():
    # Process 1 fails at once; process 0 ignores SIGINT and would sleep for a minute: the launcher must
    # SIGKILL it after the grace period and exit with process 1's code.
    script = ("import os, signal, sys, time\n"
              "if os.environ['LECTURE6_PROCESS_ID'] == '1': sys.exit(3)\n"
              "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
              "time.sleep(60)\n")
    start = time.monotonic()
    p = _launch("--processes", "2", "--grace", "1", "--", "-c", script, timeout=30)
    elapsed = time.monotonic() - start
    assert p.returncode == 3, p.stderr
    assert "process 1 exited with code 3" in p.stderr
    assert elapsed < 10  # grace (1 s) plus start-up, far below the 60 s sleep


def test_launcher_sets_each_process_environment():
    from lecture6.launch import process_env

    env = process_env({"XLA_FLAGS": "--xla_foo=1 --xla_force_host_platform_device_count=8"},
                      coordinator="127.0.0.1:1234", processes=3, process_id=2, devices_per_process=2)
    assert env["LECTURE6_COORDINATOR"] == "127.0.0.1:1234"
    assert (env["LECTURE6_NUM_PROCESSES"], env["LECTURE6_PROCESS_ID"]) == ("3", "2")
    assert env["XLA_FLAGS"] == "--xla_foo=1 --xla_force_host_platform_device_count=2"


def test_launcher_reports_a_killed_process_as_128_plus_signal():
    script = ("import os, signal\n"
              "if os.environ['LECTURE6_PROCESS_ID'] == '0': os.kill(os.getpid(), signal.SIGKILL)\n")
    p = _launch("--processes", "2", "--grace", "1", "--", "-c", script, timeout=30)
    assert p.returncode == 128 + signal.SIGKILL
    assert "process 0 was killed by SIGKILL" in p.stderr


def test_a_mask_of_the_wrong_shape_or_too_few_rows_is_refused(rng):
    import jax.numpy as jnp

    from lecture6 import sharding

    X = jnp.asarray(rng.standard_normal((8, 3)))
    with pytest.raises(ValueError, match=r"mask must have shape \(8,\) to match X \(8, 3\), got \(7,\)"):
        sharding.ppca_moments(X, jnp.ones(7, bool))
    with pytest.raises(ValueError, match="the mask selects 1 rows; at least 2"):
        sharding.fit_ppca(X, 1, mask=jnp.arange(8) < 1)


def test_initialize_does_nothing_outside_a_launch_or_cluster(monkeypatch):
    from lecture6 import distributed

    for name in ("LECTURE6_COORDINATOR", "LECTURE6_DISTRIBUTED"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize() is False
    assert distributed.is_writer()
