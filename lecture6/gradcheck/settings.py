"""The checker's tolerances, finite-difference steps, memory budget and the size above which it runs fast.

Every number here is a default; :func:`lecture6.gradcheck.check_jacobian` takes the tolerances, the mode,
the budget and the number of directions as arguments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: Default (rtol, atol) for hand versus autodiff (and jacfwd versus jacrev), by the dtype of ``x``. Both
#: sides are exact derivatives evaluated in floating point, so they agree to a few ulps times the depth
#: of the computation: 1e-7 relative in float64 leaves five orders of magnitude of head-room over
#: rounding and still catches an entry off by 1e-5; float32 has ~1e-7 resolution, so 1e-4 relative.
#: ``atol`` is relative to the largest entry of the Jacobian (zeros compare on that scale).
TOLERANCES = {
    jnp.dtype("float64"): (1e-7, 1e-9),
    jnp.dtype("float32"): (1e-4, 1e-5),
    jnp.dtype("float16"): (1e-2, 1e-3),
    jnp.dtype("bfloat16"): (2e-2, 1e-2),
}

#: Finite differences are evaluated in float64 when x64 is on and in float32 when it is off (the
#: default). A central difference with step ``h = eps^(1/3) max(1, |x_j|)`` (6e-6 in float64, 5e-3 in
#: float32) is accurate to about ``eps^(2/3)`` (truncation plus rounding): ~4e-11 in float64 and
#: ~2e-5 in float32. Autodiff versus FD is compared with this (rtol, atol), ``atol`` again relative to
#: the largest entry, and never tighter than :data:`TOLERANCES` for the dtype of ``x`` (autodiff in
#: float32 is itself only that accurate). 1e-2 in float32 leaves room for the truncation error of
#: functions with large third derivatives at a step that large.
FD_TOLERANCES = {
    jnp.dtype("float64"): (1e-6, 1e-6),
    jnp.dtype("float32"): (1e-2, 1e-2),
}

#: The steps of the full check, as multiples of ``h``. A kink must show at all of them (a kink merely
#: *near* x stops showing once the step is shorter than its distance), and autodiff must agree with the
#: central difference at one of them (the shorter ones see past a kink just beside x). The shortest step
#: keeps the rounding error of a difference, about ``eps |f| / step``, well under the tolerance: 6e-10
#: in float64, 5e-5 in float32.
FD_SHRINKS = {
    jnp.dtype("float64"): (1.0, 1e-2, 1e-4),
    jnp.dtype("float32"): (1.0, 1e-1, 1e-2),
}

#: The steps of the fast check along a random direction, as multiples of ``h``: ten times shorter each,
#: so that two neighbours' central differences can confirm each other (their truncation errors differ
#: 100-fold). A direction moves every input at once and so crosses far more kinks than one input does
#: (a ReLU network on thousands of examples has a kink within 1e-7 of x along most directions); the
#: check uses the longest pair of neighbouring steps that agree, which is below the kinks. The
#: shortest is the full check's shortest step.
DIRECTION_SHRINKS = {
    jnp.dtype("float64"): (1.0, 1e-1, 1e-2, 1e-3, 1e-4),
    jnp.dtype("float32"): (1.0, 1e-1, 1e-2),
}

#: Rounding error allowed in each evaluation of f, in ulps of the largest |f| involved. It enters every
#: FD comparison as ``FD_NOISE_ULPS * eps * |f| / step``: negligible for well-scaled f, and what keeps
#: an f of size 1e6 with derivatives of size 1 from failing on rounding alone.
FD_NOISE_ULPS = 16

#: The most memory, in bytes, the checker's own arrays may take at once: the batch of evaluations of f
#: it runs side by side (each estimated from f's traced program as the sum of the sizes of every value
#: it computes, an upper bound on what one evaluation holds) and the Jacobian-sized arrays it keeps.
#: It does not count f's own data (closed-over arrays) or the compiler. 256 MiB lets a full check of a
#: small function run every column in one batch, and keeps a check of the 784-64-10 MNIST network on
#: 4,000 images under 1 GB of resident memory in all (``benchmarks/bench_gradcheck.py``).
MEMORY_BUDGET = 256 * 2**20

#: ``mode="auto"`` runs the full check up to this many inputs and the fast check above. The full check
#: evaluates f about ``2 * len(FD_SHRINKS) + 2`` times per input (finite differences at three steps on
#: both sides, and one forward-mode pass): 16,000 evaluations at 2,000 inputs, seconds for a small
#: function and hours for a network on thousands of examples; the fast check evaluates f a few dozen
#: times whatever the number of inputs.
FAST_ABOVE = 2000

#: Random directions along which the fast check compares autodiff with finite differences. Each moves
#: every input by ``+-h``, so any one wrong entry shows in every direction; more directions only guard
#: against two wrong entries cancelling (chance 1/2 per direction when they are equal and opposite).
DIRECTIONS = 4


def default_tolerances(dtype) -> tuple[float, float]:
    """``(rtol, atol)`` used by :func:`check_jacobian` for hand versus autodiff, for inputs of ``dtype``."""
    return TOLERANCES.get(jnp.dtype(dtype), TOLERANCES[jnp.dtype("float32")])


def fd_dtype() -> np.dtype:
    """The dtype finite differences are evaluated in: float64 when x64 is on, else float32."""
    return np.dtype(np.float64) if jax.config.jax_enable_x64 else np.dtype(np.float32)


def fd_tolerances(x_dtype, fd_rtol, fd_atol) -> tuple[float, float]:
    """``(fd_rtol, fd_atol)``: the given ones, else :data:`FD_TOLERANCES` but never tighter than autodiff's."""
    r, a = FD_TOLERANCES[jnp.dtype(fd_dtype())]
    r_ad, a_ad = default_tolerances(x_dtype)
    return (max(r, r_ad) if fd_rtol is None else float(fd_rtol),
            max(a, a_ad) if fd_atol is None else float(fd_atol))


def base_steps(v: np.ndarray) -> np.ndarray:
    """``h = eps^(1/3) max(1, |v_j|)`` per input, in the FD dtype (``v`` is ``vec[x]`` in that dtype)."""
    eps = np.finfo(v.dtype).eps
    return eps ** (1.0 / 3.0) * np.maximum(1.0, np.abs(v.astype(np.float64)))


def index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index in ``shape`` of entry ``flat`` of ``vec`` (row-major)."""
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()
