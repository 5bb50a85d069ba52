"""Checking hand-written Jacobians and gradients against autodiff and finite differences.

The lecture's layout: the Jacobian of ``f: R^m -> R^n`` is ``n x m``, **rows are the outputs, columns
the inputs**; a matrix input or output is flattened row by row (:func:`lecture6.matrix_derivative.vec`).
For a scalar ``f`` the hand value may be the gradient in the shape of ``x`` (the slide: the Jacobian is
the transposed gradient).

:func:`check_jacobian` (and :func:`check_gradient` for a scalar function of a pytree) compares, in one
of two modes:

* **full** (:mod:`lecture6.gradcheck.full`), up to :data:`FAST_ABOVE` inputs: every entry of the hand
  Jacobian against ``jacfwd``, ``jacfwd`` against ``jacrev``, and autodiff against central finite
  differences at three steps per input, with kinks (ReLU or Heaviside at 0) judged by one-sided
  derivatives.
* **fast** (:mod:`lecture6.gradcheck.fast`), above: every entry of the hand Jacobian against autodiff
  (one ``jax.grad`` for a scalar f), autodiff against finite differences along a few random directions,
  and group testing to name the entry where a direction disagrees.

Both return a :class:`JacobianCheck` with ``ok``, ``worst`` (row, column of the 2-D Jacobian),
``mismatches`` and ``report()``, which names the entry (``df/dparams[1]['W'][0, 2]``).

**Finite differences judge autodiff.** ``jacfwd`` and ``jacrev`` are only as right as the derivative
rules they use; a wrong ``jax.custom_jvp`` makes both wrong in the same way, and a hand formula that
copies it agrees with them. So wherever ``f`` is smooth, autodiff must also agree with finite
differences, whatever the hand value, or the check fails and says so. A function with a
``jax.custom_vjp`` rule has no forward mode: ``jacrev`` stands for autodiff, and finite differences
judge its backward rule.

**Memory.** A check holds at most ``memory_budget`` bytes (:data:`MEMORY_BUDGET`) of its own: f is
evaluated in batches sized to fit it (:mod:`lecture6.gradcheck.programs`), and a check whose
Jacobian-sized arrays would not fit is run in the fast mode, or refused with an error saying so.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.gradcheck import fast, full, programs
from lecture6.gradcheck.result import JacobianCheck, KinkEntry
from lecture6.gradcheck.settings import (
    DIRECTIONS,
    FAST_ABOVE,
    FD_TOLERANCES,
    MEMORY_BUDGET,
    TOLERANCES,
    default_tolerances,
    fd_tolerances,
    index,
)

__all__ = [
    "DIRECTIONS", "FAST_ABOVE", "FD_TOLERANCES", "MEMORY_BUDGET", "TOLERANCES", "JacobianCheck", "KinkEntry",
    "assert_gradient", "assert_jacobian", "check_gradient", "check_jacobian", "default_tolerances",
    "finite_difference_jacobian",
]

_NOT_TRACEABLE = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError)


def _hand_jacobian(jac: Callable, x, in_shape, out_shape) -> np.ndarray:
    """``jac(x)`` as the 2-D Jacobian; compiled when ``jac`` is traceable, else called as it is."""
    try:
        value = programs.compile_with(lambda fns, x: fns[0](x), [programs.Traced(jac, x)])(x)
    except _NOT_TRACEABLE:  # a hand Jacobian written with NumPy, or with Python control flow on x
        value = jac(x)
    return _as_2d_jacobian(value, in_shape, out_shape)


def _as_2d_jacobian(jac_value, in_shape, out_shape) -> np.ndarray:
    """Accept the 2-D Jacobian, the full ``out_shape + in_shape`` tensor, or (scalar f) the gradient."""
    J = np.asarray(jac_value, dtype=np.float64)
    n_out = int(np.prod(out_shape))
    n_in = int(np.prod(in_shape))
    if J.shape == (n_out, n_in):
        return J
    if J.shape == tuple(out_shape) + tuple(in_shape):
        return J.reshape(n_out, n_in)
    if n_out == 1 and J.shape in {tuple(in_shape), (n_in,), (n_in, 1)}:
        # The slide: for scalar f the Jacobian is the transpose of the gradient.
        return J.reshape(1, n_in)
    hint = ("; it looks TRANSPOSED: rows must be the outputs of f, columns its inputs"
            if J.shape == (n_in, n_out) else "")
    raise ValueError(
        f"hand Jacobian has shape {J.shape}{hint}; for f: {tuple(in_shape)} -> {tuple(out_shape)} expected the "
        f"2-D Jacobian {(n_out, n_in)} (rows = outputs, columns = inputs)"
        + (f" or the gradient {tuple(in_shape)}" if n_out == 1 else "")
    )


def _validate(x) -> np.ndarray | jax.Array:
    x = x if isinstance(x, jax.Array) else np.asarray(x)  # (jnp.asarray would compile per shape)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"check_jacobian needs a real floating-point x, got dtype {x.dtype}")
    if x.size == 0:
        raise ValueError(f"check_jacobian needs a non-empty x, got shape {x.shape}")
    if not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"check_jacobian: x contains NaN or inf: {x}")
    return x


def _out_shape(f: Callable, x) -> tuple[int, ...]:
    out = jax.eval_shape(f, x)
    if not (hasattr(out, "dtype") and jnp.issubdtype(out.dtype, jnp.floating)):
        raise TypeError(f"check_jacobian needs f to return one real floating-point array, got {out}")
    return tuple(out.shape)


def _size(n: int) -> str:
    """``n`` bytes in the largest binary unit that keeps a number of at least 1."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _pick_mode(mode: str, n_out: int, n_in: int, budget: int) -> str:
    """``mode`` with ``"auto"`` resolved; a clear error where the mode's arrays would not fit ``budget``."""
    if mode not in ("auto", "full", "fast"):
        raise ValueError(f"check_jacobian: mode must be 'auto', 'full' or 'fast', got {mode!r}")
    need = {"full": full.result_bytes(n_out, n_in), "fast": fast.result_bytes(n_out, n_in)}
    if mode == "auto":
        mode = "full" if n_in <= FAST_ABOVE and need["full"] <= budget else "fast"
    if need[mode] > budget:
        other = " or mode='fast'" if mode == "full" and need["fast"] <= budget else ""
        raise ValueError(
            f"check_jacobian: the {mode} check of a {n_out}x{n_in} Jacobian needs {_size(need[mode])} of "
            f"Jacobian-sized arrays, over the memory budget of {_size(budget)}; pass a larger "
            f"memory_budget{other}, or check a smaller function")
    return mode


def check_jacobian(
    f: Callable,
    x,
    jac: Callable | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    fd_rtol: float | None = None,
    fd_atol: float | None = None,
    mode: str = "auto",
    directions: int = DIRECTIONS,
    memory_budget: int = MEMORY_BUDGET,
    key=None,
) -> JacobianCheck:
    """Check a hand-written Jacobian of ``f`` at ``x`` against autodiff and finite differences.

    Args:
      f: a JAX-traceable function of one array (vector or matrix) returning a scalar, vector or matrix.
      x: the point, a non-empty float array. A matrix ``x`` is differentiated with respect to ``vec[x]``.
      jac: ``jac(x)`` returning the 2-D Jacobian ``(f.size, x.size)``, the full ``f.shape + x.shape``
        tensor, or for scalar ``f`` the gradient in the shape of ``x``. Without ``jac``, autodiff
        itself is checked against finite differences.
      rtol, atol: tolerances for hand versus autodiff; default by the dtype of ``x``
        (:data:`TOLERANCES`). ``atol`` is scaled by the largest entry of the Jacobian.
      fd_rtol, fd_atol: tolerances for autodiff versus finite differences; default
        :data:`FD_TOLERANCES` (see there). Loosen them only for an f whose finite differences are
        known to be poor (badly scaled, or nearly singular at ``x``).
      mode: ``"full"``, ``"fast"``, or ``"auto"``: full up to :data:`FAST_ABOVE` inputs (and where its
        arrays fit the budget), fast above.
      directions: random directions of the fast mode (:data:`DIRECTIONS`).
      memory_budget: bytes the check's own arrays may take at once (:data:`MEMORY_BUDGET`).
      key: a ``jax.random.key`` for the fast mode's directions; by default they are drawn from a seed
        made of the bytes of ``x``, so that a check is reproducible.

    Returns:
      A :class:`JacobianCheck`; ``result.ok`` is the verdict, ``print(result)`` gives the report.
    """
    x = _validate(x)
    d_rtol, d_atol = default_tolerances(x.dtype)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    fd_rtol, fd_atol = fd_tolerances(x.dtype, fd_rtol, fd_atol)
    if not (isinstance(directions, (int, np.integer)) and directions >= 1):
        raise ValueError(f"check_jacobian: directions must be a positive integer, got {directions!r}")
    out_shape = _out_shape(f, x)
    mode = _pick_mode(mode, int(np.prod(out_shape)), int(x.size), int(memory_budget))
    hand = None if jac is None else _hand_jacobian(jac, x, tuple(x.shape), out_shape)
    tols = {"rtol": rtol, "atol": atol, "fd_rtol": fd_rtol, "fd_atol": fd_atol, "budget": int(memory_budget)}
    if mode == "full":
        return full.full_check(f, x, hand, **tols)
    return fast.fast_check(f, x, hand, directions=int(directions), key=key, **tols)


def assert_jacobian(f: Callable, x, jac: Callable, **kw) -> JacobianCheck:
    """Like :func:`check_jacobian`, but raise ``AssertionError`` with the report when the check fails."""
    result = check_jacobian(f, x, jac, **kw)
    if not result.ok:
        raise AssertionError(result.report())
    return result


def finite_difference_jacobian(f: Callable, x, *, memory_budget: int = MEMORY_BUDGET) -> np.ndarray:
    """Central-difference 2-D Jacobian of ``f`` at ``x`` (float64 when x64 is on), step per entry."""
    x = _validate(x)
    _out_shape(f, x)
    return full.differences(full.evaluate(f, x, autodiff=False, budget=int(memory_budget))).central[0]


def check_gradient(f: Callable, params, grad: Callable, **kw) -> JacobianCheck:
    """Check a hand-written gradient of a scalar ``f(params)`` whose argument is a pytree.

    ``params`` is any pytree of arrays (the MLP's list of ``{"W", "b"}`` layers, a ``PPCA`` tuple);
    ``grad(params)`` returns a pytree of the same structure. The check is :func:`check_jacobian` on the
    flattened parameters (``jax.flatten_util.ravel_pytree`` order: ``worst`` is ``(0, flat index)``),
    with the same keywords, and the report names entries by their path, e.g. ``df/dparams[1]['W'][0, 2]``.
    """
    from jax.flatten_util import ravel_pytree

    flat, unravel = ravel_pytree(params)
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    labels, starts = [], []
    offset = 0
    for path, leaf in leaves:
        labels.append((jax.tree_util.keystr(path), tuple(np.shape(leaf))))
        starts.append(offset)
        offset += int(np.size(leaf))

    def label(col: int) -> str:
        k = int(np.searchsorted(starts, col, side="right")) - 1
        name, shape = labels[k]
        idx = index(col - starts[k], shape)
        return f"params{name}" + (f"[{', '.join(map(str, idx))}]" if idx else "")

    def f_flat(v):
        return f(unravel(v))

    want = (jax.tree.structure(params), [jnp.shape(a) for a in jax.tree.leaves(params)])

    def grad_flat(v):
        g = grad(unravel(v))
        got = (jax.tree.structure(g), [jnp.shape(a) for a in jax.tree.leaves(g)])
        if got != want:
            raise ValueError(f"grad(params) must have the structure and shapes of params: got {got}, "
                             f"expected {want}")
        return ravel_pytree(g)[0]

    out_shape = jax.eval_shape(f, params).shape
    if int(np.prod(out_shape)) != 1:
        raise ValueError(f"check_gradient needs a scalar f, got output shape {out_shape}")
    result = check_jacobian(f_flat, np.asarray(flat), grad_flat, **kw)
    result.in_labels = label
    result.in_desc = f"params ({flat.size} entries in {len(leaves)} arrays)"
    return result


def assert_gradient(f: Callable, params, grad: Callable, **kw) -> JacobianCheck:
    """Like :func:`check_gradient`, but raise ``AssertionError`` with the report when the check fails."""
    result = check_gradient(f, params, grad, **kw)
    if not result.ok:
        raise AssertionError(result.report())
    return result
