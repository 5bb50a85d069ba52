"""Run a script as N local processes of one JAX program, around a coordinator on 127.0.0.1.

    python -m lecture6.launch --processes 2 --devices-per-process 2 -- scripts/train_xor.py --workdir runs/xor

Starts N copies of ``python SCRIPT ARGS...`` (the interpreter running the launcher), each with
``LECTURE6_COORDINATOR=127.0.0.1:PORT``, ``LECTURE6_NUM_PROCESSES=N`` and ``LECTURE6_PROCESS_ID=i`` in its
environment, so :func:`lecture6.distributed.initialize` joins them into one JAX runtime, and with
``XLA_FLAGS=--xla_force_host_platform_device_count=K`` so each process sees K CPU devices. The processes
run on the CPU (``JAX_PLATFORMS=cpu`` unless the environment sets it): this is a rehearsal of a
multi-host run on one machine. On a real cluster no launcher is needed; see the README.

The coordinator's port. The launcher binds it (a free one the OS picks, or ``--port``) before it starts
anything and holds it, bound but not listening, until the run ends (:func:`reserve_port`): meanwhile the OS
gives it to no other socket that asks for a free port and uses it for no outgoing connection, while process
0's coordinator, which binds with ``SO_REUSEADDR`` as the launcher does, binds it and listens. (Picking a
free port, closing it and letting process 0 bind it seconds later would leave it to anything on the machine
that asks for a port in between.) A busy port is reported before anything starts.

Failure. If any process exits non-zero (or is killed), the others are sent SIGINT at once and SIGKILL
``--grace`` seconds later (default 3), and the launcher exits with the failing process's code (128 + signal number
for a signal) -- so a run with a dead process ends within about ``--grace`` seconds instead of waiting
in a collective. ``--timeout`` bounds the whole run the same way (exit code 124).
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from lecture6.distributed import ENV_COORDINATOR, ENV_INIT_TIMEOUT, ENV_NUM_PROCESSES, ENV_PROCESS_ID

HOST = "127.0.0.1"
_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def reserve_port(port: int | None = None) -> socket.socket:
    """A socket bound to ``port`` on 127.0.0.1 (a free port the OS picks if ``None``), for the coordinator.

    Bound with ``SO_REUSEADDR`` and never listening, it holds the port while it is open: the OS hands it to
    no other ``bind`` or outgoing connection, yet a server that binds with ``SO_REUSEADDR`` (JAX's
    coordinator, a gRPC server) can bind and listen on it. Close it once the run is over. Raises
    ``OSError`` with a clear message if the port is out of range or something listens on it.
    """
    if port is not None and not 1 <= port <= 65535:
        raise OSError(f"coordinator port must be in 1..65535, got {port}")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, 0 if port is None else port))
    except OSError as exc:
        s.close()
        raise OSError(f"coordinator port {HOST}:{port} is busy ({exc.strerror}); pick another --port, "
                      "or leave --port out for a free one") from None
    return s


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to now (the OS picks it). It is released on return, so
    anything may take it before it is bound again: the launcher holds its port with :func:`reserve_port`."""
    with reserve_port() as s:
        return s.getsockname()[1]


def check_port(port: int) -> None:
    """Raise ``OSError`` with a clear message if ``port`` on 127.0.0.1 cannot be reserved for a coordinator."""
    reserve_port(port).close()


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


def _stop(procs: list[subprocess.Popen], grace: float, log) -> None:
    """SIGINT to every running process, SIGKILL to those still running ``grace`` seconds later.

    SIGINT, not SIGTERM: Python turns it into ``KeyboardInterrupt``, so ``finally`` blocks run (a
    temporary workdir is removed), while JAX's runtime catches SIGTERM (preemption notice) and keeps going.
    A process blocked in a collective waiting for a dead peer does not return to Python: SIGKILL ends it.
    """
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for i, p in enumerate(procs):
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"process {i} still running {grace:g} s after SIGINT; SIGKILL")
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
    with reserve_port(port) as reserved:  # held until every process has exited
        coordinator = f"{HOST}:{reserved.getsockname()[1]}"
        return _run(command, processes, devices_per_process, coordinator, grace, timeout, log)


def _run(command, processes, devices_per_process, coordinator, grace, timeout, log) -> int:
    procs: list[subprocess.Popen] = []
    exited: queue.Queue = queue.Queue()  # (index, exit code) of each process, as it exits
    previous = {}

    def on_signal(signum, frame):  # Ctrl-C or a scheduler's SIGTERM reaches every process
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for i in range(processes):
            env = process_env(os.environ, coordinator=coordinator, processes=processes, process_id=i,
                              devices_per_process=devices_per_process)
            procs.append(p := subprocess.Popen([sys.executable, *command], env=env))
            threading.Thread(target=lambda i=i, p=p: exited.put((i, p.wait())), daemon=True).start()
        running = processes
        while running:
            try:  # woken by the next exit, not by a clock; the deadline only bounds the wait
                i, code = exited.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                log(f"the run exceeded --timeout={timeout:g} s; stopping every process")
                _stop(procs, grace, log)
                return 124
            running -= 1
            if code != 0:
                log(f"process {i} {_describe(code)}; stopping the other {running} running process(es) "
                    f"(SIGINT, SIGKILL after {grace:g} s)")
                _stop(procs, grace, log)
                return _exit_code(code)
        return 0
    except KeyboardInterrupt:
        log("interrupted; stopping every process")
        _stop(procs, grace, log)
        return 130
    except BaseException:  # e.g. a process that could not be started: none is left behind
        _stop(procs, grace, log)
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
