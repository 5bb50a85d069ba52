"""Many processes, one program: JAX's multi-controller runtime, started the same way by every script.

Every script calls :func:`initialize` first. Then:

* under ``python -m lecture6.launch`` (which sets ``LECTURE6_COORDINATOR``, ``LECTURE6_NUM_PROCESSES`` and
  ``LECTURE6_PROCESS_ID``) it calls ``jax.distributed.initialize`` with that coordinator, process count
  and id, CPU collectives by gloo;
* on a cluster, with ``LECTURE6_DISTRIBUTED=auto`` in the environment (or ``initialize(auto=True)``), it
  calls ``jax.distributed.initialize()`` with no arguments, and JAX detects the coordinator, the process
  count and this process's id from the cluster's environment (SLURM, Open MPI, Cloud TPU, ...);
* otherwise it does nothing, and the script runs as one process.

After it, ``jax.devices()`` lists the devices of every process and ``jax.local_devices()`` this
process's own; :func:`lecture6.sharding.make_mesh` spans them all. Every process runs the same program
on its own rows or runs; :func:`is_writer` (process 0) alone writes outputs.
"""

from __future__ import annotations

import os

import jax

ENV_COORDINATOR = "LECTURE6_COORDINATOR"  # host:port of the coordinator (process 0)
ENV_NUM_PROCESSES = "LECTURE6_NUM_PROCESSES"
ENV_PROCESS_ID = "LECTURE6_PROCESS_ID"
ENV_INIT_TIMEOUT = "LECTURE6_INIT_TIMEOUT"  # seconds to wait for every process to join
ENV_AUTO = "LECTURE6_DISTRIBUTED"  # "auto": jax.distributed.initialize() with cluster auto-detection


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from None


def initialize(*, auto: bool | None = None) -> bool:
    """Join the other processes of this run, if there are any; returns True if JAX's distributed runtime
    is running after the call. Call it before any other JAX work (first thing in a script).

    ``auto``: call ``jax.distributed.initialize()`` with cluster auto-detection; ``None`` (default)
    means ``LECTURE6_DISTRIBUTED=auto`` in the environment. The launcher's environment takes precedence.
    """
    if jax.distributed.is_initialized():
        return True
    coordinator = os.environ.get(ENV_COORDINATOR)
    if auto is None:
        auto = os.environ.get(ENV_AUTO, "").strip().lower() == "auto"
    if not coordinator and not auto:
        return False
    # CPU collectives between processes (gloo); GPUs and TPUs use their own (NCCL, ICI) regardless.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if coordinator:
            num_processes, process_id = _env_int(ENV_NUM_PROCESSES), _env_int(ENV_PROCESS_ID)
            if not 0 <= process_id < num_processes:
                raise ValueError(f"{ENV_PROCESS_ID}={process_id} must be in [0, {ENV_NUM_PROCESSES}={num_processes})")
            timeout = _env_int(ENV_INIT_TIMEOUT) if os.environ.get(ENV_INIT_TIMEOUT) else 300
            jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                       process_id=process_id, initialization_timeout=timeout)
        else:
            jax.distributed.initialize()
    except RuntimeError as exc:
        if "before any JAX" in str(exc) or "backend" in str(exc).lower():
            raise RuntimeError("lecture6.distributed.initialize() must run before any JAX computation "
                               f"(first thing in the script): {exc}") from exc
        raise
    return True


def is_writer() -> bool:
    """True in the one process that writes outputs (process 0; the only process when not distributed)."""
    return jax.process_index() == 0


def describe() -> str:
    """One line: processes, devices (global and local) and the backend, for a script's log."""
    return (f"process {jax.process_index()} of {jax.process_count()}, {jax.local_device_count()} local of "
            f"{jax.device_count()} {jax.default_backend()} devices")
