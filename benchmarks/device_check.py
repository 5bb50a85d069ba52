"""The accelerator check: device-relevant tests and the benchmarks in float32 on whatever backend JAX sees.

    make device-check                                  # the backend JAX picks (GPU or TPU if there is one)
    JAX_PLATFORMS=cpu make device-check                # the same on the CPU
    python benchmarks/device_check.py [--out FILE] [--budget SECONDS]

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
import json
import os
import platform
import subprocess
import sys
import time

from lecture6.rundir import write_atomically

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable

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
]

PROBE = ("import json, jax; d = jax.devices(); print(json.dumps({'backend': jax.default_backend(), "
         "'devices': [str(x) for x in d], 'kind': d[0].device_kind, 'jax': jax.__version__}))")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


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


def report(info: dict, results: list[tuple[str, list[str], dict]], total: float) -> str:
    ok = all(r["code"] == 0 for _, _, r in results)
    lines = [f"# Device check: {info['backend']}", "",
             f"`make device-check` (`benchmarks/device_check.py`), {datetime.date.today().isoformat()}: "
             f"{'every step passed' if ok else 'SOME STEPS FAILED'}, {total:.0f} s in all.", "",
             f"- backend `{info['backend']}`, {len(info['devices'])} device(s) of kind `{info['kind']}`: "
             f"{', '.join(info['devices'])}",
             f"- jax {info['jax']}, Python {platform.python_version()}, {platform.machine()}, "
             f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at the end",
             f"- `JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')}`", "",
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
    out = args.out or os.path.join(ROOT, "benchmarks", f"RESULTS-{info['backend']}.md")
    write_atomically(out, report(info, results, total))
    print(f"device_check: wrote {os.path.relpath(out, ROOT)} ({total:.0f} s)")
    return 0 if all(r["code"] == 0 for _, _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
