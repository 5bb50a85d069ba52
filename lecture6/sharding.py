"""More devices, same program: rows of data and training runs placed over a device mesh.

A :class:`jax.sharding.Mesh` names an axis over devices; ``NamedSharding(mesh, P("data"))`` splits an
array's first axis over that axis. The jitted programs of :mod:`lecture6` then run on the shards as they
are, and XLA inserts the collectives: the sum over rows in PPCA's ``X^T X`` becomes per-device partial
sums and one all-reduce. Nothing here copies device data to the host.

What lives here
* :func:`make_mesh`: a 1-D mesh over all devices of all processes (``jax.devices()``), in process order.
* :func:`shard_rows`: place an ``(n, d)`` array with its rows split over the mesh; a row count that the
  mesh does not divide is refused with an error that says what to do. :func:`shard_rows_padded` pads
  with zero rows instead and returns a row mask.
* :func:`process_rows` and :func:`rows_from_processes`: with several processes
  (:mod:`lecture6.distributed`), each process reads only its own block of rows, and
  ``jax.make_array_from_process_local_data`` joins the blocks into one global array.
* :func:`shard_leading`: split the leading axis of every leaf of a pytree (training runs: seeds and
  learning rates) over a ``runs`` axis (:mod:`lecture6.runs`).
* :func:`split_host_cpu`: before JAX starts, show the CPU as one device per core (``XLA_FLAGS``), so
  that a program split over the devices uses every core.
* :func:`to_host`: an array as NumPy on the host, gathered from every process when it is split over
  several (what a caller does where it needs host values, and only there).
* PPCA on padded rows: :func:`ppca_moments`, :func:`fit_ppca`, :func:`ppca_mean_log_likelihood`,
  each with an optional ``mask``; without one they are :mod:`lecture6.ppca`'s own functions.

Row layout. The global rows are padded at the end to ``n_pad``, the next multiple of the number of
devices on the axis, and device ``k`` of the axis holds rows ``[k n_pad / D, (k + 1) n_pad / D)``. A
process holds the blocks of its devices, which are contiguous because :func:`make_mesh` orders the
devices by process; so the valid rows keep their global indices and a bad row is named by it.
"""

from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lecture6 import ppca

DATA = "data"  # the mesh axis that rows of data are split over
RUNS = "runs"  # the mesh axis that independent training runs are split over
HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_host_cpu(devices: int) -> int:
    """Show JAX's CPU platform as ``devices`` devices (``XLA_FLAGS=--xla_force_host_platform_device_count``),
    unless ``XLA_FLAGS`` already sets a count (``python -m lecture6.launch --devices-per-process``, or the
    user); returns the count in effect. Only before JAX has started a backend: afterwards the count is
    fixed, and this raises ``RuntimeError``.

    One XLA CPU device runs a program's loop on about one core; several host devices, each running its
    shard of a program split over a mesh, use every core (the XOR study of ``scripts/xor_study.py``:
    ``benchmarks/bench_study.py``). Accelerators are not affected: the CPU devices are then not the
    default ones.
    """
    if devices < 1:
        raise ValueError(f"host devices must be >= 1, got {devices}")
    flags = os.environ.get("XLA_FLAGS", "")
    found = re.search(rf"{HOST_DEVICE_FLAG}=(\d+)", flags)
    if found:
        return int(found.group(1))
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise RuntimeError("split_host_cpu() must run before JAX starts a backend (before any computation)")
    os.environ["XLA_FLAGS"] = " ".join([*flags.split(), f"{HOST_DEVICE_FLAG}={devices}"])
    return devices


def make_mesh(axis: str = DATA, devices=None) -> Mesh:
    """A 1-D mesh named ``axis`` over ``devices`` (default: every device of every process).

    The devices are ordered by process, then by id, so each process holds one contiguous block of
    the axis (what :func:`process_rows` relies on).
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("a mesh needs at least one device, got none")
    devices = sorted(devices, key=lambda dev: (dev.process_index, dev.id))
    return Mesh(np.array(devices), (axis,))


def _mesh_and_size(mesh, axis: str) -> tuple[Mesh, int]:
    mesh = make_mesh(axis) if mesh is None else mesh
    if axis not in mesh.shape:
        raise ValueError(f"the mesh has axes {tuple(mesh.shape)}, not {axis!r}")
    return mesh, mesh.shape[axis]


def check_divides(count: int, mesh: Mesh, axis: str, what: str) -> None:
    """Raise a ``ValueError`` naming the numbers if the mesh's ``axis`` does not divide ``count``."""
    size = mesh.shape[axis]
    if count % size:
        lower, upper = count - count % size, count - count % size + size
        raise ValueError(
            f"{what}: {count} does not divide evenly over the {size} devices of mesh axis {axis!r}; "
            f"use a multiple of {size} (e.g. {lower or upper} or {upper}), a mesh with a device count "
            f"that divides {count}, or pad with a mask (lecture6.sharding.shard_rows_padded)")


def _place(X, sharding: NamedSharding) -> jax.Array:
    """``X`` with ``sharding``: device to device for a ``jax.Array``, from the host otherwise.

    For a host array each device receives only its own rows (``make_array_from_callback``), so with
    several processes each process copies only the rows its devices hold; a memory map reads only those.
    """
    if isinstance(X, jax.Array):
        if X.sharding == sharding:
            return X
        if not X.is_fully_addressable:
            raise ValueError("X is a global array spread over several processes with a different sharding "
                             f"({X.sharding}); re-shard it inside a jitted program instead")
        return jax.device_put(X, sharding)
    return jax.make_array_from_callback(X.shape, sharding, lambda index: np.asarray(X[index]))


def _check_rows(X, name: str = "X"):
    if not isinstance(X, jax.Array):
        X = X if isinstance(X, np.ndarray) else np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got ndim={X.ndim} with shape {tuple(X.shape)}")
    return X


def shard_rows(X, mesh: Mesh | None = None, *, axis: str = DATA) -> jax.Array:
    """``X`` ``(n, d)`` placed with its rows split evenly over the mesh axis ``axis``.

    ``mesh`` defaults to :func:`make_mesh` over all devices. Refuses, with a ``ValueError`` naming n and
    the device count, a row count the axis does not divide (see :func:`shard_rows_padded`).
    """
    X = _check_rows(X)
    mesh, _ = _mesh_and_size(mesh, axis)
    check_divides(X.shape[0], mesh, axis, f"X has n={X.shape[0]} rows")
    return _place(X, NamedSharding(mesh, P(axis)))


def padded_count(n: int, mesh: Mesh, axis: str = DATA) -> int:
    """``n`` rounded up to a multiple of the number of devices on ``axis``."""
    size = mesh.shape[axis]
    return -(-n // size) * size


def _padded_host(X: np.ndarray, n_pad: int) -> np.ndarray:
    out = np.zeros((n_pad, *X.shape[1:]), dtype=X.dtype)
    out[:X.shape[0]] = X
    return out


def shard_rows_padded(X, mesh: Mesh | None = None, *, axis: str = DATA) -> tuple[jax.Array, jax.Array]:
    """``(X_padded (n_pad, d), mask (n_pad,))``: ``X`` ``(n, d)`` with zero rows appended up to a multiple of
    the device count, rows split over ``axis``; ``mask`` is True on the n real rows (sharded alike).

    Pass the mask to :func:`ppca_moments`, :func:`fit_ppca` or :func:`ppca_mean_log_likelihood`.
    """
    X = _check_rows(X)
    mesh, _ = _mesh_and_size(mesh, axis)
    n = X.shape[0]
    n_pad = padded_count(n, mesh, axis)
    rows = NamedSharding(mesh, P(axis))
    if isinstance(X, jax.Array):
        X = jnp.pad(X, ((0, n_pad - n), (0, 0))) if n_pad > n else X
    elif n_pad > n:
        X = _padded_host(X, n_pad)
    mask = np.arange(n_pad) < n
    return _place(X, rows), _place(mask, rows)


def process_rows(n: int, mesh: Mesh | None = None, *, axis: str = DATA) -> slice:
    """The rows ``[start, stop)`` of the ``n`` global rows that this process feeds (see the module docstring).

    ``stop`` is clipped to ``n``: the last processes may get fewer rows, or none, when n is padded.
    """
    mesh, _ = _mesh_and_size(mesh, axis)
    n_pad = padded_count(n, mesh, axis)
    indices = NamedSharding(mesh, P(axis)).addressable_devices_indices_map((n_pad,))
    starts = sorted((idx[0].start or 0, idx[0].stop if idx[0].stop is not None else n_pad)
                    for idx in indices.values())
    for (_, stop), (start, _) in zip(starts, starts[1:]):
        if stop != start:
            raise ValueError("this process's devices do not hold one contiguous block of the mesh axis "
                             f"{axis!r}; build the mesh with lecture6.sharding.make_mesh")
    return slice(min(starts[0][0], n), min(starts[-1][1], n))


def rows_from_processes(local, n: int, mesh: Mesh | None = None, *,
                        axis: str = DATA) -> tuple[jax.Array, jax.Array]:
    """``(X (n_pad, d), mask (n_pad,))``, one global array from every process's own rows.

    Each process passes ``local``, the rows :func:`process_rows` ``(n, mesh)`` gives it (its share of
    the ``n`` global rows, in order), as a NumPy array; the blocks are joined by
    ``jax.make_array_from_process_local_data`` without any process seeing another's rows. Rows are
    padded with zeros as in :func:`shard_rows_padded`, whose result this equals in one process.
    """
    local = _check_rows(local, "local rows")
    if isinstance(local, jax.Array):
        raise TypeError("rows_from_processes takes each process's rows as a host (NumPy) array; a jax.Array "
                        "already on the devices can be placed with shard_rows or shard_rows_padded")
    mesh, _ = _mesh_and_size(mesh, axis)
    rows = process_rows(n, mesh, axis=axis)
    expected = rows.stop - rows.start
    if local.shape[0] != expected:
        raise ValueError(f"process {jax.process_index()} must pass rows {rows.start}..{rows.stop - 1} of the "
                         f"n={n} rows ({expected} rows), got {local.shape[0]} rows")
    n_pad = padded_count(n, mesh, axis)
    indices = NamedSharding(mesh, P(axis)).addressable_devices_indices_map((n_pad,))
    block = sum((idx[0].stop or n_pad) - (idx[0].start or 0) for idx in indices.values())
    sharding = NamedSharding(mesh, P(axis))
    X = jax.make_array_from_process_local_data(sharding, _padded_host(local, block),
                                               (n_pad, local.shape[1]))
    mask = jax.make_array_from_process_local_data(sharding, np.arange(block) < expected, (n_pad,))
    return X, mask


def shard_leading(tree, mesh: Mesh | None = None, *, axis: str = RUNS):
    """Every leaf of ``tree`` with its leading axis split over ``axis`` (e.g. the keys and learning rates
    of many training runs); refuses a leading size that the axis does not divide."""
    mesh, _ = _mesh_and_size(mesh, axis)
    sharding = NamedSharding(mesh, P(axis))

    def place(leaf):
        if not isinstance(leaf, jax.Array):
            leaf = np.asarray(leaf)
        if leaf.ndim == 0:
            raise ValueError(f"a scalar leaf cannot be split over mesh axis {axis!r}")
        check_divides(leaf.shape[0], mesh, axis, f"a leaf of shape {tuple(leaf.shape)} has {leaf.shape[0]} runs")
        return _place(leaf, sharding)

    return jax.tree_util.tree_map(place, tree)


def to_host(x) -> np.ndarray:
    """``x`` as a NumPy array on the host. A ``jax.Array`` split over the devices of several processes is
    gathered from all of them (``multihost_utils.process_allgather``: a collective, so every process
    must call it); anything else is copied as it is."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


# ----------------------------------------------------------------------------------------------------
# PPCA on padded rows


@jax.jit
def _masked_moments(X, mask):
    w = mask.astype(X.dtype)
    n = jnp.sum(w)
    mean = jnp.dot(w, X, precision=ppca._HIGHEST) / n
    Xc = (X - mean[None, :]) * w[:, None]  # padding rows are zero after centring too
    S = jnp.dot(Xc.T, Xc, precision=ppca._HIGHEST) / n
    return mean, S, jnp.all(jnp.isfinite(mean))


def _check_mask(X, mask) -> jax.Array:
    if mask.shape != X.shape[:1]:
        raise ValueError(f"mask must have shape ({X.shape[0]},) to match X {tuple(X.shape)}, got {tuple(mask.shape)}")
    return mask


def ppca_moments(X, mask=None) -> tuple[jax.Array, jax.Array]:
    """Mean ``(d,)`` and (1/n) covariance ``(d, d)`` of the rows of ``X`` where ``mask`` is True.

    ``X`` ``(n_pad, d)`` a ``jax.Array`` (sharded or not), ``mask`` ``(n_pad,)`` booleans. The data are
    centred before the product (precision independent of the mean). Without a mask:
    :func:`lecture6.ppca.moments`.
    """
    if mask is None:
        return ppca.moments(X)
    X = ppca._jax_data(X)
    mask = _check_mask(X, mask)
    if not ppca._is_traced(mask) and (count := int(jnp.sum(mask))) < 2:
        raise ValueError(f"the mask selects {count} rows; at least 2 are needed to fit a covariance")
    mean, S, ok = _masked_moments(X, mask)
    if not ppca._is_traced(ok) and not bool(ok):
        ppca._raise_non_finite(jnp.where(mask[:, None], X, 0), "X")
    return mean, S


def fit_ppca(X, q: int, *, mask=None, min_sigma2: float | None = None) -> ppca.PPCA:
    """:func:`lecture6.ppca.fit_closed_form` of the rows of ``X`` where ``mask`` is True (all rows if None).

    The moments are reduced on the devices that hold the rows; the eigendecomposition of the
    ``(d, d)`` covariance is replicated.
    """
    if mask is None:
        return ppca.fit_closed_form(X, q, min_sigma2=min_sigma2)
    mean, S = ppca_moments(X, mask)
    return ppca.fit_closed_form_from_moments(mean, S, q, min_sigma2=min_sigma2)


@jax.jit
def _masked_mean(values, mask):
    return jnp.sum(jnp.where(mask, values, 0)) / jnp.sum(mask)


def ppca_mean_log_likelihood(model: ppca.PPCA, X, mask=None) -> jax.Array:
    """Average :func:`lecture6.ppca.log_likelihood` over the rows of ``X`` where ``mask`` is True."""
    values = ppca.log_likelihood(model, X)
    if mask is None:
        return jnp.mean(values)
    return _masked_mean(values, _check_mask(values, mask))
