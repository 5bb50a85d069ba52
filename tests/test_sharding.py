"""Several devices and several processes give the one-device results.

The multi-device checks run in subprocesses (tests/multidevice_checks.py) so that this process keeps one
device: one process with 4 CPU devices, and 2 processes x 2 devices under ``lecture6.launch`` (one launch
for all the multi-process checks). Both start in the background as soon as the tests are collected
(tests/launches.py), so they run beside the rest of the suite.
Their results are compared here with references computed independently: NumPy's BLAS route of
:mod:`lecture6.ppca` on all rows in one process, ``np.cov``, and training runs on this process's one
device.
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import launches
import multidevice_checks as checks
import numpy as np
import pytest
from jax.sharding import Mesh

from lecture6 import ppca, rundir
from lecture6 import runs as R
from lecture6.data import xor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKS = os.path.join(ROOT, "tests", "multidevice_checks.py")
TOL = 1e-12  # float64: the sharded sums differ from one device's only in the order of the additions
# Data parallel, float64: each step's gradient sums the examples' parts in another order (per device,
# then across), ~1e-16 relative; 30 steps of a well-conditioned XOR net keep it far below this.
DP_TOL = 1e-12
# A launch waits behind the in-process tests (tests/launches.py runs it at low priority), hence the long
# limits on the whole launch and on its processes joining one another.
LAUNCH_TIMEOUT, JOIN_TIMEOUT = 1200, 600
XOR_CONFIG = rundir.load_config_file(checks.XOR_CONFIG)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LECTURE6_")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


def _launch(*args, timeout=120):
    """``python -m lecture6.launch ARGS``; if it outlives ``timeout``, it and its processes are killed."""
    with subprocess.Popen([sys.executable, "-m", "lecture6.launch", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(), start_new_session=True) as p:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            stdout, stderr = p.communicate()
            pytest.fail(f"the launcher was still running after {timeout} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


# --- The two multi-device runs, started when the tests are collected (tests/launches.py) -------------

# Each run is its own process with JAX's and XLA's default settings, as a user runs a script: 4 CPU devices,
# 2 processes x 2 devices, and the training references on one device (so that "bit for bit" compares
# programs compiled with the same settings, the ones users get).
FOUR_DEVICE_FLAGS = " ".join([os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=4"])

FOUR = launches.launch("four_devices", lambda out: launches.python(CHECKS, "--outdir", f"{out}/run"),
                       env=_env(XLA_FLAGS=FOUR_DEVICE_FLAGS), timeout=LAUNCH_TIMEOUT)
TWO = launches.launch("two_processes", lambda out: launches.python(
    "-m", "lecture6.launch", "--processes", "2", "--devices-per-process", "2", "--timeout", str(LAUNCH_TIMEOUT),
    "--", CHECKS, "--outdir", f"{out}/run"), env=_env(LECTURE6_INIT_TIMEOUT=str(JOIN_TIMEOUT)),
    timeout=LAUNCH_TIMEOUT + 30)


ONE = launches.launch("one_device_reference", lambda out: launches.python(CHECKS, "--reference", "--outdir",
                                                                        f"{out}/run"),
                      env=_env(XLA_FLAGS=os.environ.get("XLA_FLAGS", "")), timeout=LAUNCH_TIMEOUT)


def _finish(launch) -> pathlib.Path:
    """Wait for a multi-device run; its output directory."""
    p = launch.result()
    assert p.returncode == 0, f"{launch.name} exited with {p.returncode}:\n{(p.stdout + p.stderr)[-6000:]}"
    return pathlib.Path(launch.out) / "run"


@pytest.fixture(scope="module")
def four_devices():
    return dict(np.load(_finish(FOUR) / "results.npz"))


@pytest.fixture(scope="module")
def two_processes():
    out = _finish(TWO)
    assert os.listdir(out) == ["results.npz"]  # nothing temporary is left
    results = dict(np.load(out / "results.npz"))
    assert int(results["written_by"]) == 0  # the workdir is process 0's (rundir.atomic_workdir)
    return results


@pytest.fixture(scope="module", params=["four_devices", "two_processes"])
def multidevice(request):
    return request.getfixturevalue(request.param)


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


def test_ppca_on_rows_split_over_devices_equals_one_device(reference, multidevice):
    got = multidevice
    assert int(got["device_count"]) == 4
    assert got["even_rows_per_shard"].tolist() == [50] * int(got["local_device_count"])  # really split
    assert bool(got["even_W_replicated"])
    _assert_fit_equal(got, reference, "even")
    np.testing.assert_allclose(got["even_jit_W"], reference["even_W"], rtol=TOL, atol=TOL)


def test_padded_rows_are_masked_out_of_the_fit(reference, multidevice):
    got = multidevice
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


# --- Training runs split over devices ----------------------------------------------------------------


def _config(fields):
    return checks.train_config(XOR_CONFIG, fields)


@pytest.fixture(scope="module")
def train_reference():
    """The same training runs on one device, as the library runs them without a mesh (its own process)."""
    ref = dict(np.load(_finish(ONE) / "results.npz"))
    assert int(ref["device_count"]) == 1
    return ref


def _fields(ref: dict, prefix: str) -> dict:
    """The per-run arrays of one family of runs (``result_arrays``' names)."""
    return {k: v for k, v in ref.items() if k.startswith(prefix + "_") and k != prefix + "_progress"}


def test_training_runs_split_over_processes_equal_one_device_bitwise(two_processes, train_reference):
    """train_xor.py's program as 2 processes x 2 devices: 10 runs (seeds-last layout) padded to 12; every
    run's parameters, history and verdicts, gathered from both processes, are the one-device run's, bit
    for bit (runs are independent: no sum crosses devices)."""
    got, ref = two_processes, _fields(train_reference, "xor")
    assert int(got["xor_padded"]) == 12 and "runs" in str(got["xor_spec"])
    assert not got["xor_diverged"].any()  # the padding runs (NaN weights) are not among the results
    for k, value in ref.items():
        np.testing.assert_array_equal(got[k], value, err_msg=k)


def test_progress_lines_come_once_from_the_split_runs(two_processes, train_reference):
    """One line per due epoch from process 0 (not one per device or process), the means over the 10
    real runs, not the padding."""
    got, ref = two_processes["xor_progress"], train_reference["xor_progress"]
    assert got.shape == ref.shape == (2, 5)
    np.testing.assert_array_equal(got[:, [0, 2, 3]], ref[:, [0, 2, 3]])  # epoch, finite runs, solved
    np.testing.assert_allclose(got[:, [1, 4]], ref[:, [1, 4]], rtol=TOL)  # means: sums in another order


def test_data_parallel_runs_equal_one_device_to_rounding(four_devices, train_reference):
    """A 2 x 2 mesh: 5 runs (padded to 6) split over 'runs', each full batch split over 'data'; the
    program sums the gradient across devices (an all-reduce) and ends where one device does."""
    got, ref = four_devices, _fields(train_reference, "dp")
    assert str(got["dp_layout"]) == "vmap" and int(got["dp_padded"]) == 6 and bool(got["dp_all_reduce"])
    for k, value in ref.items():
        np.testing.assert_allclose(got[k], value, rtol=DP_TOL, atol=DP_TOL, err_msg=k)




def test_training_mistakes_on_a_mesh_are_named(four_devices):
    message = str(four_devices["dp_refusal"])
    assert message == ("config.batch_size = 3 is invalid: expected a multiple of the 2 devices of mesh axis 'data' "
                       "that each minibatch is split over (config.data_parallel), e.g. 2 or 4")
    assert "seeds-last layout" in str(four_devices["dp_seeds_last_refusal"])
    with pytest.raises(ValueError, match=r"the mesh has axes \('data',\); training runs need a 'runs' axis"):
        R.make_train_runs(_config(checks.XOR_RUNS), xor(), mesh=Mesh(np.array(jax.devices()[:1]), ("data",)))
    with pytest.raises(ValueError, match=r"config.data_parallel = 'yes' is invalid: expected True or False"):
        R.make_train_runs(_config({"data_parallel": "yes"}), xor())


def test_study_seeds_split_over_devices_equal_one_device_bitwise(four_devices, train_reference):
    """xor_study.py's program on 4 devices: 6 seeds padded to 8, every seed's result as on one device."""
    assert int(four_devices["study_padded"]) == 8
    for k in ("solved", "final_loss", "diverged"):
        np.testing.assert_array_equal(four_devices[f"study_{k}"], train_reference[f"study_{k}"], err_msg=k)


def test_only_process_0_writes_the_workdir(tmp_path, monkeypatch):
    """Elsewhere, atomic_workdir hands out a private scratch directory and leaves the workdir alone."""
    from lecture6 import distributed

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old.txt").write_text("previous run")
    monkeypatch.setattr(distributed, "is_writer", lambda: False)
    with rundir.atomic_workdir(str(tmp_path / "run")) as scratch:
        assert not scratch.startswith(str(tmp_path))
        pathlib.Path(scratch, "new.txt").write_text("not written")
    assert not os.path.exists(scratch)
    assert os.listdir(tmp_path) == ["run"] and os.listdir(tmp_path / "run") == ["old.txt"]


def test_launcher_refuses_a_busy_coordinator_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = _launch("--processes", "2", "--port", str(port), "--", "-c", "print('started')", timeout=30)
    assert p.returncode == 2
    assert f"coordinator port 127.0.0.1:{port} is busy" in p.stderr
    assert "started" not in p.stdout  # nothing was started


def test_launcher_stops_every_process_when_one_dies(tmp_path):
    # Process 0 ignores SIGINT and would sleep for 10 minutes; process 1 fails once process 0 is ready (it
    # opens a FIFO that process 1 waits on: an event, not a sleep). The launcher must SIGKILL process 0
    # after the grace period and exit with process 1's code.
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    script = ("import os, signal, sys, time\n"
              "if os.environ['LECTURE6_PROCESS_ID'] == '1':\n"
              f"    open({str(ready)!r}).read()\n"  # returns once process 0 has opened and closed the FIFO
              "    print(time.monotonic(), flush=True)\n"
              "    sys.exit(3)\n"
              "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
              f"open({str(ready)!r}, 'w').close()\n"
              "time.sleep(600)\n")
    p = _launch("--processes", "2", "--grace", "1", "--", "-c", script, timeout=300)
    stopped = time.monotonic() - float(p.stdout)  # CLOCK_MONOTONIC: one clock for every process
    assert p.returncode == 3, p.stderr
    assert "process 1 exited with code 3" in p.stderr
    assert "process 0 still running 1 s after SIGINT; SIGKILL" in p.stderr, p.stderr
    # From process 1's exit to the launcher's: the 1 s grace, plus noticing the exit and the launcher's own
    # exit (~0.1 s idle, a few s on a loaded machine). The bound says the launcher did not wait for the
    # 600 s sleep; it is far from both.
    assert stopped < 60, stopped


def test_launcher_holds_the_coordinator_port_for_the_whole_run():
    """Between choosing the coordinator's port and process 0 listening on it, nothing else can bind it:
    every process finds a plain bind refused, and process 0 binds and listens as JAX's coordinator does
    (``SO_REUSEADDR``)."""
    # Each line in one write (both processes share the launcher's stdout).
    script = ("import errno, os, socket\n"
              "say = lambda line: os.write(1, (line + '\\n').encode())\n"
              "host, port = os.environ['LECTURE6_COORDINATOR'].split(':')\n"
              "with socket.socket() as s:\n"
              "    try:\n"
              "        s.bind((host, int(port)))\n"
              "        say('plain bind succeeded')\n"
              "    except OSError as e:\n"
              "        say('plain bind refused ' + errno.errorcode[e.errno])\n"
              "if os.environ['LECTURE6_PROCESS_ID'] == '0':\n"
              "    with socket.socket() as s:\n"
              "        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "        s.bind((host, int(port)))\n"
              "        s.listen()\n"
              "        say('coordinator listening')\n")
    p = _launch("--processes", "2", "--", "-c", script, timeout=60)
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.splitlines()) == ["coordinator listening"] + ["plain bind refused EADDRINUSE"] * 2


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
