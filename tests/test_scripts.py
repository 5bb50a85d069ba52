"""The scripts and what is behind them: each script launched once for real on a tiny config (its outputs
read back), the experiment entry points called in-process for the rest, config errors as one line,
the workdir replaced whole, and the solvability study against the per-cell training it stands for."""

import csv
import json
import os
import pathlib
import shutil
import sys
import threading

import jax
import launches
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from lecture6 import experiment, rundir, sharding, study
from lecture6.data import xor
from lecture6.runs import TrainingDiverged, make_train_runs

ROOT = pathlib.Path(__file__).resolve().parents[1]
XOR_CONFIG = str(ROOT / "configs" / "xor.py")


def script(name, *args):
    """The command line of ``scripts/name``; ``{out}`` in an argument is the launch's output folder."""
    return lambda out: launches.python(str(ROOT / "scripts" / name), *[a.format(out=out) for a in args])


def xor_config(**kw):
    config = rundir.load_config_file(XOR_CONFIG)
    config.update(kw)
    return config


TINY = {"seeds": 16, "epochs": 200, "log_every": 20, "width": 4, "progress_every": 100}

# The scripts launched for real, started when the tests are collected (tests/launches.py).
XOR = launches.launch("train_xor", script("train_xor.py", "--config", XOR_CONFIG,
                                          *[f"--config.{k}={v}" for k, v in TINY.items()], "--workdir={out}/script"))
# The same command again, compiling every program afresh (a cache of its own): a rerun writes identical files.
XOR_AGAIN = launches.launch("train_xor_again", script("train_xor.py", "--config", XOR_CONFIG,
                                                      *[f"--config.{k}={v}" for k, v in TINY.items()],
                                                      "--workdir={out}/script"), env=launches.fresh_cache_env())
# What a launched script sees of JAX's and XLA's settings: the defaults, as a user's shell gives them.
_SHOW_SETTINGS = ("import json, os, jax; read = jax.config.read; print(json.dumps({"
                  "'disable_most_optimizations': read('jax_disable_most_optimizations'), "
                  "'enable_x64': read('jax_enable_x64'), 'XLA_FLAGS': os.environ.get('XLA_FLAGS'), "
                  "'jax_env': sorted(k for k in os.environ if k.startswith('JAX_') and 'CACHE' not in k)}))")
SETTINGS = launches.launch("settings", lambda out: launches.python("-c", _SHOW_SETTINGS))
DIGITS = launches.launch("train_digits", script("train_digits.py", "--config.seeds=1", "--config.epochs=3",
                                                "--config.width=16", "--workdir={out}/digits"))
BAD_VALUE = launches.launch("train_xor_bad_value", script("train_xor.py", "--config.lr=-0.5",
                                                          "--workdir={out}/run"))
STUDY = launches.launch("xor_study", script("xor_study.py", "--seeds=50", "--widths=2", "--activations=relu,tanh",
                                            "--config.epochs=300", "--outdir={out}/study"))


def under_launcher(name, *args):
    """``scripts/name`` as 2 processes x 2 CPU devices under ``python -m lecture6.launch``."""
    return lambda out: launches.python("-m", "lecture6.launch", "--processes", "2", "--devices-per-process", "2",
                                       "--timeout", "600", "--", str(ROOT / "scripts" / name),
                                       *[a.format(out=out) for a in args])


# The same two commands under the launcher: the seeds split over 4 devices of 2 processes.
XOR_LAUNCHED = launches.launch("train_xor_2x2", under_launcher(
    "train_xor.py", "--config", XOR_CONFIG, *[f"--config.{k}={v}" for k, v in TINY.items()], "--workdir={out}/script"),
    timeout=660)
STUDY_LAUNCHED = launches.launch("xor_study_2x2", under_launcher(
    "xor_study.py", "--seeds=50", "--widths=2", "--activations=relu,tanh", "--config.epochs=300",
    "--outdir={out}/study"), timeout=660)


@pytest.fixture(scope="module")
def xor_script_run(tmp_path_factory):
    """train_xor.py launched for real, and the same config run in-process by experiment.run_xor."""
    tmp = tmp_path_factory.mktemp("xor")
    p = XOR.result()
    shutil.copytree(os.path.join(XOR.out, "script"), tmp / "script")
    lines = []
    summary = experiment.run_xor(xor_config(**TINY), str(tmp / "inprocess"), log=lines.append)
    return p, tmp, summary, lines


def test_train_xor_script_writes_a_complete_run(xor_script_run):
    p, tmp, _, _ = xor_script_run
    assert p.returncode == 0, p.stderr
    assert "epoch    100/200" in p.stdout and "compiled in" in p.stdout  # progress and compile cost
    workdir = tmp / "script"
    assert {"config.json", "metrics.jsonl", "params.npz", "summary.json", "loss_curves.png",
            "decision_boundary.png", "hidden_space.png"} <= set(os.listdir(workdir))
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["seeds"] == 16 and summary["diverged"] == 0
    assert summary["compile_seconds"] > 0 and summary["train_seconds"] > 0
    assert json.loads((workdir / "config.json").read_text())["width"] == 4
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(20, 201, 20))
    params = _arrays(workdir / "params.npz")
    assert params["W1"].shape == (4, 2) and params["W2"].shape == (1, 4) and params["b2"].shape == (1,)
    assert os.listdir(XOR.out) == ["script"]  # the script left no temporary directory beside its workdir
    assert sorted(os.listdir(tmp)) == ["inprocess", "script"]  # nor did run_xor


def test_the_scripts_success_rate_is_the_libraries(xor_script_run):
    """The summary's success rate counts the runs the library trains for that config (same seeds), and
    the saved best network, run through a forward pass written here, is the one with the lowest loss."""
    _, tmp, _, _ = xor_script_run
    summary = json.loads((tmp / "script" / "summary.json").read_text())
    runs = make_train_runs(xor_config(**TINY), xor())
    res = runs.train(jax.random.key(0), runs.seed, runs.lr)
    assert summary["success_rate"] == np.mean(res.solved) and 0 < summary["success_rate"] < 1
    p = _arrays(tmp / "script" / "params.npz")
    X, y = xor()
    out = np.maximum(X @ p["W1"].T + p["b1"], 0) @ p["W2"].T + p["b2"]
    loss = 0.5 * np.mean(np.sum((out - y[:, None]) ** 2, axis=1))
    np.testing.assert_allclose(loss, np.min(res.final_loss), rtol=1e-5)
    assert summary["best_run"] == int(np.argmin(res.final_loss))


def test_a_rerun_writes_identical_outputs(xor_script_run):
    """The script run twice, each in its own process and the second compiling afresh: identical params.npz
    and metrics.jsonl; and run_xor in this process (the suite's settings) gives the same networks."""
    _, tmp, summary, lines = xor_script_run
    assert XOR_AGAIN.result().returncode == 0, XOR_AGAIN.result().stderr
    first, again = pathlib.Path(XOR.out) / "script", pathlib.Path(XOR_AGAIN.out) / "script"
    a, b = _arrays(first / "params.npz"), _arrays(again / "params.npz")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert (first / "metrics.jsonl").read_bytes() == (again / "metrics.jsonl").read_bytes()
    c = _arrays(tmp / "inprocess" / "params.npz")
    assert sorted(a) == sorted(c) and all(np.allclose(a[k], c[k], rtol=1e-5, atol=1e-6) for k in a)
    assert any(line.startswith("compiled in") for line in lines)


def test_launched_scripts_run_with_jax_and_xla_defaults():
    p = SETTINGS.result()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"disable_most_optimizations": False, "enable_x64": False, "XLA_FLAGS": None,
                                    "jax_env": []}


def _arrays(path) -> dict:
    """Every array of an ``.npz`` file, read and the file closed."""
    with np.load(path) as f:
        return {k: f[k] for k in f}


def _numbers(obj):
    """Every number in a JSON value, in order."""
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _numbers(v)]
    return [obj] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


def test_train_xor_under_the_launcher_writes_what_one_process_writes(xor_script_run):
    """2 processes x 2 devices: one workdir (process 0's), the same summary numbers, params and metrics, and
    the progress printed once. Bit for bit with the jax/jaxlib `make test` installs (the versions RESULTS.md
    records); on another, XLA may vectorize a device's share of the runs differently from all of them
    (float32 roundings): there they must agree to float32 rounding, and the difference is reported."""
    p = XOR_LAUNCHED.result()
    assert p.returncode == 0, p.stdout + p.stderr
    assert os.listdir(XOR_LAUNCHED.out) == ["script"]  # process 0 alone wrote; nothing temporary is left
    one, two = pathlib.Path(XOR.out) / "script", pathlib.Path(XOR_LAUNCHED.out) / "script"
    assert sorted(os.listdir(one)) == sorted(os.listdir(two))
    assert p.stdout.count("epoch    100/200") == 1  # printed by process 0 only
    s1, s2 = (launches.without_timings(json.loads((d / "summary.json").read_text())) for d in (one, two))
    m1, m2 = (((d / "metrics.jsonl").read_text()) for d in (one, two))
    a, b = _arrays(one / "params.npz"), _arrays(two / "params.npz")
    assert sorted(a) == sorted(b)
    if s1 == s2 and m1 == m2 and all(np.array_equal(a[k], b[k]) for k in a):
        return
    versions = launches.recorded_versions()
    if launches.installed_versions() == versions:
        pytest.fail(f"not bit for bit on {versions}: summary {s1} vs {s2}")
    rows1, rows2 = ([json.loads(line) for line in m.splitlines()] for m in (m1, m2))
    for x, y in ((s1, s2), (rows1, rows2), *((a[k], b[k]) for k in a)):
        xs, ys = (np.asarray(_numbers(v) if not isinstance(v, np.ndarray) else v, float) for v in (x, y))
        np.testing.assert_allclose(xs, ys, rtol=1e-5, atol=1e-7)
    worst = max(abs(u - v) / max(abs(u), 1e-30) for u, v in zip(_numbers(s1), _numbers(s2)))
    pytest.skip(f"on {launches.installed_versions()} (not the recorded {versions}) 2 processes x 2 devices agree "
                f"with one process to float32 rounding (summary, largest relative difference {worst:.1e}), not bit "
                "for bit")


def test_xor_study_under_the_launcher_gives_the_same_table():
    for p in (STUDY.result(), STUDY_LAUNCHED.result()):
        assert p.returncode == 0, p.stdout + p.stderr
    one, two = pathlib.Path(STUDY.out) / "study", pathlib.Path(STUDY_LAUNCHED.out) / "study"
    assert (two / "study.csv").read_bytes() == (one / "study.csv").read_bytes()
    assert (launches.without_timings(json.loads((two / "summary.json").read_text()))
            == launches.without_timings(json.loads((one / "summary.json").read_text())))


def test_train_digits_script_reports_test_accuracy():
    workdir = pathlib.Path(DIGITS.out) / "digits"
    p = DIGITS.result()
    assert p.returncode == 0, p.stderr
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["n_train"] + summary["n_test"] == 1797
    assert summary["test_accuracy_mean"] > 0.5  # far above chance (0.1) after three epochs
    assert {"loss_curves.png", "accuracy.png", "params.npz", "metrics.jsonl"} <= set(os.listdir(workdir))
    assert _arrays(workdir / "params.npz")["W2"].shape == (10, 16)


def test_all_diverged_raises_after_writing(tmp_path):
    with pytest.raises(TrainingDiverged, match="training diverged: 8 of 8 runs diverged"):
        experiment.run_xor(xor_config(lr=5.0, seeds=8, epochs=50, log_every=10, progress_every=0),
                           str(tmp_path / "all"), log=lambda s: None)
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())  # still written, nothing lost
    assert summary["diverged"] == 8 and summary["final_loss_median"] is None


def test_some_diverged_is_a_warning_naming_the_seeds():
    lines = []
    summary = {"diverged": 3, "runs": 16, "diverged_seeds": [1, 4, 6]}
    experiment._say_diverged(summary, xor_config(lrs=(0.1, 5.0)), lines.append, "runs/xor")
    assert lines == ["warning: 3 of 16 runs diverged (non-finite loss or parameters) with lrs [0.1, 5.0]; "
                     "seeds 1, 4, 6; they are left out of every aggregate (a smaller learning rate usually helps)."]


# --- Flags: one line for every mistake --------------------------------------------------------------


LOAD_MODULE = "ignore:the load_module\\(\\) method is deprecated:DeprecationWarning"  # ml_collections loading a config


def parse(monkeypatch, *args, config=XOR_CONFIG):
    """rundir's flag parsing on fresh flags (ml_collections reads sys.argv itself); the exit message."""
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config", flag_values=fv, lock_config=True)
    argv = ["script", *args]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(flags, "FLAGS", fv)
    with pytest.raises(SystemExit) as exit_:
        rundir._parse_flags(argv, config)
    return str(exit_.value.code)


@pytest.mark.filterwarnings(LOAD_MODULE)
@pytest.mark.parametrize("arg, words", [
    ("--config.widht=3", ["unknown config field config.widht", "'--config.widht=3'", 'Did you mean "width"']),
    ("--config.width=2.5", ["--config.width=2.5", "invalid literal"]),
    ("--config.seeds=many", ["--config.seeds=many"]),
])
def test_flag_mistakes_are_one_line(monkeypatch, arg, words):
    message = parse(monkeypatch, arg)
    assert message.startswith("error: ") and "\n" not in message
    for w in words:
        assert w in message


@pytest.mark.filterwarnings(LOAD_MODULE)
def test_a_missing_config_file_is_one_line(monkeypatch, tmp_path):
    message = parse(monkeypatch, f"--config={tmp_path / 'nope.py'}")
    assert message == f"error: config file '{tmp_path / 'nope.py'}' not found or not loadable"


@pytest.mark.filterwarnings(LOAD_MODULE)
def test_another_config_file_is_used(monkeypatch, tmp_path):
    """``--config=FILE`` loads FILE (here the xor config with a changed width), overrides apply on top."""
    path = tmp_path / "mine.py"
    path.write_text(pathlib.Path(XOR_CONFIG).read_text().replace(
        'return base_train["get_config"]()', 'c = base_train["get_config"]()\n    c.width = 7\n    return c'))
    shutil.copy(ROOT / "configs" / "base_train.py", tmp_path / "base_train.py")
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config", flag_values=fv, lock_config=True)
    argv = ["script", f"--config={path}", "--config.seeds=3"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(flags, "FLAGS", fv)
    rundir._parse_flags(argv, XOR_CONFIG)
    assert (fv.config.width, fv.config.seeds) == (7, 3)


def test_a_bad_value_exits_nonzero_with_one_line():
    """The real entry point: a bad value is one line on stderr naming the field, no traceback, nothing written."""
    p = BAD_VALUE.result()
    assert p.returncode != 0
    assert p.stderr == "error: config.lr = -0.5 is invalid: expected a finite number > 0\n", p.stderr
    assert not os.listdir(BAD_VALUE.out)


# --- The workdir: always a complete run --------------------------------------------------------------


def _write(workdir, text):
    with rundir.atomic_workdir(str(workdir)) as d:
        (pathlib.Path(d) / "run.txt").write_text(text)


def test_the_swap_is_one_system_call(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    assert rundir.exchange(str(a), str(b))  # Linux renameat2(RENAME_EXCHANGE)
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


@pytest.mark.parametrize("crash_at", ["writing", "swap", "cleanup"])
def test_the_workdir_is_never_missing(tmp_path, monkeypatch, crash_at):
    """A crash while writing, during the swap or while removing the old run: the workdir at its path is
    the old complete run or the new complete one, never absent or half-written."""
    workdir = tmp_path / "out"
    _write(workdir, "old")
    if crash_at == "swap":
        monkeypatch.setattr(rundir, "exchange", lambda a, b: (_ for _ in ()).throw(OSError("crash")))
    if crash_at == "cleanup":
        monkeypatch.setattr(rundir.shutil, "rmtree", lambda *a, **k: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises((OSError, RuntimeError)):
        with rundir.atomic_workdir(str(workdir)) as d:
            (pathlib.Path(d) / "run.txt").write_text("new")
            if crash_at == "writing":
                raise RuntimeError("crash")
    assert (workdir / "run.txt").read_text() == {"writing": "old", "swap": "old", "cleanup": "new"}[crash_at]
    assert sorted(os.listdir(workdir)) == ["run.txt"]


def test_a_finished_write_leaves_nothing_behind(tmp_path):
    _write(tmp_path / "out", "old")
    _write(tmp_path / "out", "new")
    assert (tmp_path / "out" / "run.txt").read_text() == "new" and os.listdir(tmp_path) == ["out"]


def test_scripts_keep_compiled_programs_in_the_repository_cache_unless_one_is_set(tmp_path):
    """rundir.use_compilation_cache: a cache directory already configured (here the suite's own, set by
    tests/conftest.py) wins; otherwise the one given is set. Programs that compile in 0.2 s are
    kept, unless JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS (here the suite's 0) says otherwise."""
    current = jax.config.jax_compilation_cache_dir
    threshold = jax.config.jax_persistent_cache_min_compile_time_secs
    assert current and rundir.use_compilation_cache(str(tmp_path / "x")) == current
    assert jax.config.jax_persistent_cache_min_compile_time_secs == threshold == 0
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        with pytest.MonkeyPatch.context() as env:
            env.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")
            assert rundir.use_compilation_cache(str(tmp_path / "x")) == str(tmp_path / "x")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "x")
        assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.2
    finally:
        jax.config.update("jax_compilation_cache_dir", current)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", threshold)


def test_host_devices_are_set_before_jax_starts_and_never_override_a_count(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=3")
    assert sharding.split_host_cpu(2) == 3  # the launcher's or the user's count stays
    monkeypatch.setenv("XLA_FLAGS", "")
    assert jax.devices()  # JAX's backends are started in this process
    with pytest.raises(RuntimeError, match="before JAX starts a backend"):
        sharding.split_host_cpu(2)  # this process has started JAX: the count can no longer change
    with pytest.raises(ValueError, match="host devices must be >= 1, got 0"):
        sharding.split_host_cpu(0)


# --- The study -----------------------------------------------------------------------------------------


def test_xor_study_script_writes_table_plot_and_timings():
    out = pathlib.Path(STUDY.out) / "study"
    p = STUDY.result()
    assert p.returncode == 0, p.stderr
    assert "the study: 2 cells x 50 seeds, 1 program (one per width" in p.stdout
    # one CPU device per core by default (sharding.split_host_cpu), the seeds split over them
    assert f"training on {sharding.available_cores()} device(s)" in p.stdout
    assert "width 2 done (compiled in " in p.stdout
    with open(out / "study.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["activation"], r["width"]) for r in rows] == [("relu", "2"), ("tanh", "2")]
    # the slides' 2-unit network solves XOR from some starts only (the table a comparison can tell apart)
    assert all(0 < float(r["success_rate"]) < 1 and int(r["seeds"]) == 50 for r in rows)
    assert rows[0]["success_rate"] != rows[1]["success_rate"]
    assert "| width | relu | tanh |" in (out / "study.md").read_text()
    assert (out / "success_vs_width.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["compile_seconds"] < summary["seconds"] and summary["cells"] == 2 and len(summary["rows"]) == 2


@pytest.mark.parametrize("layout, cells", [("seeds_last", [("relu", 3), ("tanh", 3)]), ("vmap", [("tanh", 2)])])
def test_every_study_cell_is_the_training_of_its_width_and_activation(layout, cells):
    """The study's programs -- one per width, a loop per activation -- give cell by cell the
    networks make_train_runs trains for that width and activation alone."""
    config = xor_config(seeds=32, epochs=150, log_every=50, layout=layout, dtype="float64", progress_every=0)
    solved, final_loss, diverged = study.make_study(config, cells, xor())(jax.random.key(0))
    for (act, width), ok, loss in zip(cells, np.asarray(solved), np.asarray(final_loss)):
        runs = make_train_runs(xor_config(**{**config.to_dict(), "width": width, "activation": act}), xor())
        ref = runs.train(jax.random.key(0), runs.seed, runs.lr)
        np.testing.assert_array_equal(ok, ref.solved)
        np.testing.assert_allclose(loss, ref.final_loss, rtol=1e-12, atol=1e-15)
    assert not np.asarray(diverged).any() and np.asarray(solved).any()  # not a comparison of all-failures


def test_study_compiles_in_a_background_thread_and_dispatches_each_width_when_ready(monkeypatch):
    """Study.run: widest first, the programs compiled one after another in a thread of their own (so the
    compiling never waits on a dispatch), each width dispatched from the caller's thread once its program
    is ready and reported after; the results are those of compiling everything first."""
    config = xor_config(seeds=8, epochs=20, log_every=10, dtype="float64", progress_every=0)
    cells = [("tanh", 1), ("tanh", 3), ("relu", 2)]
    ahead = study.make_study(config, cells, xor()).compile(jax.random.key(1))
    events = []
    s = study.make_study(config, cells, xor())
    compile_one = s._compile

    def compiled(width, drawn):
        events.append(("compile", width, threading.get_ident()))
        program = compile_one(width, drawn)
        return lambda *args: (events.append(("dispatch", width, threading.get_ident())), program(*args))[1]

    monkeypatch.setattr(s, "_compile", compiled)
    got = s.run(jax.random.key(1), on_width=lambda width, *r: events.append(("done", width, threading.get_ident())))
    main = threading.get_ident()
    for kind in ("compile", "dispatch", "done"):
        assert [e[1] for e in events if e[0] == kind] == [3, 2, 1], kind
    assert {e[2] for e in events if e[0] == "compile"} != {main}
    assert len({e[2] for e in events if e[0] == "compile"}) == 1
    assert {e[2] for e in events if e[0] != "compile"} == {main}
    for width in (3, 2, 1):
        assert events.index(("compile", width, events[0][2])) < events.index(("dispatch", width, main)) \
            < events.index(("done", width, main))
    assert set(s.compile_seconds) == {1, 2, 3} and all(t > 0 for t in s.compile_seconds.values())
    for a, b in zip(jax.tree.leaves(ahead(jax.random.key(1))), jax.tree.leaves(s(jax.random.key(1)))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert list(got) == [3, 2, 1]


def test_wilson_interval_against_known_values():
    # k = 0: the upper end is z^2 / (n + z^2) (closed form)
    z = 1.959963984540054
    lo, hi = study.wilson_interval(0, 100)
    assert lo == 0.0 and hi == pytest.approx(z * z / (100 + z * z), rel=1e-9)
    # a textbook value: 81 of 263 gives (0.2553, 0.3662) (Wilson 1927 / Newcombe 1998, example)
    lo, hi = study.wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    with pytest.raises(ValueError, match="k=5, n=3"):
        study.wilson_interval(5, 3)


def test_markdown_table_layout():
    rows = [{"width": w, "activation": a, "success_rate": 0.5, "ci_low": 0.4, "ci_high": 0.6}
            for a in ("relu", "tanh") for w in (1, 2)]
    lines = study.markdown_table(rows).splitlines()
    assert lines[0] == "| width | relu | tanh |" and len(lines) == 4
    assert lines[2] == "| 1 | 0.5000 [0.4000, 0.6000] | 0.5000 [0.4000, 0.6000] |"
