"""Run a script as N local processes of one JAX program, around a coordinator on 127.0.0.1.

    python -m lecture6.launch --processes 2 --devices-per-process 2 -- scripts/train_xor.py --workdir runs/xor

Starts N copies of ``python SCRIPT ARGS...`` (the interpreter running the launcher), each with
``LECTURE6_COORDINATOR=127.0.0.1:PORT``, ``LECTURE6_NUM_PROCESSES=N`` and ``LECTURE6_PROCESS_ID=i`` in its
environment, so :func:`lecture6.distributed.initialize` joins them into one JAX runtime, and with
``XLA_FLAGS=--xla_force_host_platform_device_count=K`` so each process sees K CPU devices. The processes
run on the CPU (``JAX_PLATFORMS=cpu`` unless the environment sets it): this is a rehearsal of a
multi-host run on one machine. On a real cluster no launcher is needed; see the README.

Failure. The port is a free one unless ``--port`` names one; a busy port is reported before anything
starts. If any process exits non-zero (or is killed), the others are sent SIGINT at once and SIGKILL
``--grace`` seconds later (default 3), and the launcher exits with the failing process's code (128 + signal number
for a signal) -- so a run with a dead process ends within about ``--grace`` seconds instead of waiting
in a collective. ``--timeout`` bounds the whole run the same way (exit code 124).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time

from lecture6.distributed import ENV_COORDINATOR, ENV_INIT_TIMEOUT, ENV_NUM_PROCESSES, ENV_PROCESS_ID

HOST = "127.0.0.1"
POLL_SECONDS = 0.05
_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def check_port(port: int) -> None:
    """Raise ``OSError`` with a clear message if ``port`` on 127.0.0.1 cannot be bound."""
    if not 1 <= port <= 65535:
        raise OSError(f"coordinator port must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise OSError(f"coordinator port {HOST}:{port} is busy ({exc.strerror}); pick another --port, "
                          "or leave --port out for a free one") from None


def process_env(base: dict, *, coordinator: str, processes: int, process_id: int,
                devices_per_process: int | None) -> dict:
    """The environment of process ``process_id``: ``base`` plus the launcher's variables."""
    env = dict(base)
    env[ENV_COORDINATOR] = coordinator
    env[ENV_NUM_PROCESSES] = str(processes)
    env[ENV_PROCESS_ID] = str(process_id)
    env.setdefault(ENV_INIT_TIMEOUT, "60")
    env.setdefault("JAX_PLATFORMS", "cpu")
    if devices_per_process is not None:
        flags = re.sub(rf"{_DEVICE_FLAG}=\S*", "", env.get("XLA_FLAGS", "")).split()
        env["XLA_FLAGS"] = " ".join([*flags, f"{_DEVICE_FLAG}={devices_per_process}"])
    return env


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
    """SIGINT to every running process, SIGKILL to those still running ``grace`` seconds later.

    SIGINT, not SIGTERM: Python turns it into ``KeyboardInterrupt``, so ``finally`` blocks run (a
    temporary workdir is removed), while JAX's runtime catches SIGTERM (preemption notice) and keeps going.
    A process blocked in a collective waiting for a dead peer does not return to Python: SIGKILL ends it.
    """
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch(command: list[str], *, processes: int, devices_per_process: int | None = None,
           port: int | None = None, grace: float = 3.0, timeout: float | None = None, log=None) -> int:
    """Run ``[sys.executable, *command]`` as ``processes`` processes; returns the exit code (0: all succeeded).

    See the module docstring for the environment and what happens when a process fails.
    """
    log = log or (lambda s: print(f"launch: {s}", file=sys.stderr, flush=True))
    if processes < 1:
        raise ValueError(f"--processes must be >= 1, got {processes}")
    if devices_per_process is not None and devices_per_process < 1:
        raise ValueError(f"--devices-per-process must be >= 1, got {devices_per_process}")
    if not command:
        raise ValueError("no command given: put the script and its arguments after --")
    if port is None:
        port = free_port()
    else:
        check_port(port)
    coordinator = f"{HOST}:{port}"
    procs: list[subprocess.Popen] = []
    previous = {}

    def on_signal(signum, frame):  # Ctrl-C or a scheduler's SIGTERM reaches every process
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    start = time.monotonic()
    try:
        for i in range(processes):
            env = process_env(os.environ, coordinator=coordinator, processes=processes, process_id=i,
                              devices_per_process=devices_per_process)
            procs.append(subprocess.Popen([sys.executable, *command], env=env))
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                running = sum(c is None for c in codes)
                log(f"process {i} {_describe(code)}; stopping the other {running} running process(es) "
                    f"(SIGINT, SIGKILL after {grace:g} s)")
                _stop(procs, grace)
                return _exit_code(code)
            if all(c == 0 for c in codes):
                return 0
            if timeout is not None and time.monotonic() - start > timeout:
                log(f"the run exceeded --timeout={timeout:g} s; stopping every process")
                _stop(procs, grace)
                return 124
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        log("interrupted; stopping every process")
        _stop(procs, grace)
        return 130
    except BaseException:  # e.g. a process that could not be started: none is left behind
        _stop(procs, grace)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    else:
        command = []
    parser = argparse.ArgumentParser(prog="python -m lecture6.launch", description=__doc__.split("\n")[0],
                                     usage="%(prog)s --processes N [--devices-per-process K] [--port P] "
                                           "-- SCRIPT.py [ARGS ...]")
    parser.add_argument("--processes", type=int, required=True, help="number of processes N")
    parser.add_argument("--devices-per-process", type=int, default=None,
                        help="CPU devices per process K (XLA_FLAGS); default: XLA's default (1)")
    parser.add_argument("--port", type=int, default=None, help="coordinator port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--grace", type=float, default=3.0,
                        help="seconds between SIGINT and SIGKILL when stopping processes (default 3)")
    parser.add_argument("--timeout", type=float, default=None, help="stop every process after this many seconds")
    args = parser.parse_args(argv)
    try:
        return launch(command, processes=args.processes, devices_per_process=args.devices_per_process,
                      port=args.port, grace=args.grace, timeout=args.timeout)
    except (ValueError, OSError) as exc:
        print(f"launch: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
