"""Audit rows for the first part of the lecture: Jacobians, the chain rule, vectorizing a matrix.

Each row checks lecture6 code (looked up on its module at call time, so a test can break it) against
``jax.jacfwd``/``jax.jacrev`` and finite differences (through :func:`lecture6.gradcheck.check_jacobian`),
or against a formula, a finite difference or a brute force written here in NumPy.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import chain_rule as cr
from lecture6 import gradcheck
from lecture6 import jacobian as jm
from lecture6 import matrix_derivative as md
from lecture6.audit import Check, claim, sized
from lecture6.audit._ref import central_differences, max_abs_diff

ORDER = 10

#: Hand versus autodiff in float64: a few ulps times the depth of the computation.
TOL = 1e-10
#: Central differences (step 1e-6) of the smooth, O(1) functions of these slides against an exact
#: derivative: truncation ~1e-12, round-off ~1e-10.
FD_TOL = 1e-6
FD_STEP = 1e-6
N_POINTS = 5


def _points(shape, seed, low=-2.0, high=2.0, away_from_zero=False):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(low, high, size=(sized(N_POINTS, 2), *shape))
    if away_from_zero:  # keep denominators such as 1/x2 well away from 0
        pts = np.sign(pts) * (0.5 + np.abs(pts))
    return [jnp.asarray(p) for p in pts]


def _check_many(f, jac, points) -> Check:
    results = [gradcheck.check_jacobian(f, x, jac) for x in points]
    err = max(max(r.max_abs_error, max_abs_diff(r.jacobians["fd"], r.jacobians[r.autodiff])) for r in results)
    bad = [r for r in results if not r.ok]
    return Check(err, not bad, bad[0].report().splitlines()[2].strip() if bad else "")


def _values(f, formula, points) -> float:
    """``max |f(x) - formula(x)|`` over the points: lecture6's function against the slide's formula in NumPy."""
    return max(max_abs_diff(np.asarray(f(x)).reshape(-1), formula(np.asarray(x)).reshape(-1)) for x in points)


def _slide_f_example(x):
    return np.array([2 * x[0] + x[1], np.pi * x[1], -x[0] / x[1]])


# Rows of the shape below (the function against the slide's formula at random points, then the checker
# on its hand Jacobian at the same points) differ only in the functions they name.
@claim("Jacobian matrices", "f([x1,x2]) = [2x1+x2, pi x2, -x1/x2] has Jacobian [[2,1],[0,pi],[-1/x2, x1/x2^2]]",
       f"f vs the slide's formula; hand Jacobian vs jacfwd, jacrev and central FD at {N_POINTS} random points")
def _f_example() -> Check:
    pts = _points((2,), 0, away_from_zero=True)
    val = _values(jm.f_example, _slide_f_example, pts)
    check = _check_many(jm.f_example, jm.f_example_jacobian, pts)
    return Check(max(val, check.max_error), val < TOL and check.passed, check.note)


@claim("Jacobian matrices", "for f: R^m -> R^n the Jacobian is n x m: rows are the outputs, columns the inputs",
       "lecture6.jacobian.jacobian (modes fwd, rev, auto) and the hand Jacobian of f: R^2 -> R^3 vs central "
       "differences written column by column (column j = df/dx_j); entry (3,2) = d f3 / d x2 = x1/x2^2")
def _layout() -> Check:
    x = np.array([1.5, -0.7])
    fd = central_differences(lambda v: np.asarray(jm.f_example(jnp.asarray(v))), x, FD_STEP)
    routes = {mode: np.asarray(jm.jacobian(jm.f_example, jnp.asarray(x), mode)) for mode in ("fwd", "rev", "auto")}
    routes["hand"] = np.asarray(jm.f_example_jacobian(jnp.asarray(x)))
    shapes = {name: J.shape for name, J in routes.items()}
    fd_err = max(max_abs_diff(J, fd) for J in routes.values())
    entry_err = max(abs(float(J[2, 1]) - 1.5 / 0.7**2) if J.shape == (3, 2) else np.inf for J in routes.values())
    ok = all(s == (3, 2) for s in shapes.values()) and fd_err < FD_TOL and entry_err < TOL
    return Check(max(fd_err, entry_err), ok, "" if ok else f"shapes {shapes}")


@claim("Chain rule of multivariate calculus", "d(f o g)/dx = df/dg dg/dx = [1, -2, 1/4] [[1,2],[0,1],[-1,0]] = [3/4, 0]",
       "chain() of the hand Jacobians vs the slide's [3/4, 0] and vs jacfwd of f(g(x)) at random points")
def _chain_example() -> Check:
    errs = []
    composed = jax.jacfwd(lambda v: cr.f_chain(cr.g_chain(v)))
    for x in _points((2,), 1):
        product = np.asarray(cr.chain(cr.f_chain_jacobian(x), cr.g_chain_jacobian(x)))
        errs.append(max_abs_diff(product, [[0.75, 0.0]]))
        errs.append(max_abs_diff(product, composed(x)))
    return Check(max(errs), max(errs) < TOL)


@claim("Chain rule of multivariate calculus", "by substitution f(g(x)) = x1 + 2x2 - 2x2 + (-x1+3)/4 = 3/4 (x1 + 1)",
       "f(g(x)) and the substituted form vs 3/4 (x1+1) at random points; the Jacobian [3/4, 0] by check_jacobian")
def _substitution() -> Check:
    pts = _points((2,), 2)
    slide = lambda x: np.array([0.75 * (x[0] + 1)])  # noqa: E731
    err = max(_values(lambda v: cr.f_chain(cr.g_chain(v)), slide, pts), _values(cr.fg_substituted, slide, pts))
    check = _check_many(lambda v: cr.f_chain(cr.g_chain(v)), cr.fg_jacobian, pts)
    return Check(max(err, check.max_error), err < TOL and check.passed, check.note)


@claim("Chain rule of multivariate calculus", "the chain rule in the wrong order, dg/dx df/dg, is wrong",
       "chain(dg/dx (3x2), df/dg (1x3)) raises a shape error; for square maps chain() in the right order "
       "equals jacfwd of h(h(x)) and in the reversed order differs from it")
def _wrong_order() -> Check:
    x = jnp.array([0.3, -1.1])
    undefined = False
    try:
        cr.chain(cr.g_chain_jacobian(x), cr.f_chain_jacobian(x))
    except ValueError:
        undefined = True
    # Square case: h o h, both 2x2 and not commuting.
    right = cr.chain(cr.h_chain_jacobian(cr.h_chain(x)), cr.h_chain_jacobian(x))
    wrong = cr.chain(cr.h_chain_jacobian(x), cr.h_chain_jacobian(cr.h_chain(x)))
    truth = jax.jacfwd(lambda v: cr.h_chain(cr.h_chain(v)))(x)
    err_right = max_abs_diff(right, truth)
    gap_wrong = max_abs_diff(wrong, truth)
    return Check(err_right, undefined and err_right < TOL and gap_wrong > 1e-3,
                 f"reversed product is off by {gap_wrong:.2f} for h o h"
                 + ("" if undefined else "; chain(dg/dx, df/dg) did not raise"))


@claim("Chain rule of multivariate calculus", "d(f o g o h)/dx = df/dg dg/dh dh/dx, each evaluated at its own input",
       "chain() of the three hand Jacobians vs jacfwd/jacrev/FD of f(g(h(x))) at random points")
def _three_chain() -> Check:
    return _check_many(cr.fgh, lambda x: cr.chain(*cr.fgh_jacobian_factors(x)), _points((2,), 3))


@claim("Jacobian versus gradient", "for f: R^m -> R the Jacobian (1 x m) is the transpose of the gradient (m)",
       "gradient_as_jacobian_transpose of 2ax + b/y: the gradient (m,) and the Jacobian (1, m) vs central "
       "differences and vs [2a, -b/y^2] written out, at random points")
def _grad_vs_jac() -> Check:
    w = np.array([0.7, -1.3])

    def f(xy):
        return jm.f_perspectives(xy, jnp.asarray(w))

    errs, fd_errs, shapes_ok = [], [], True
    for xy in _points((2,), 4, away_from_zero=True):
        g, J = (np.asarray(a) for a in jm.gradient_as_jacobian_transpose(f, xy))
        shapes_ok &= g.shape == (2,) and J.shape == (1, 2)
        xy = np.asarray(xy)
        fd = central_differences(lambda v: np.asarray(f(jnp.asarray(v))), xy, FD_STEP)  # (1, 2)
        written = np.array([2 * w[0], -w[1] / xy[1] ** 2])
        errs += [max_abs_diff(g, written), max_abs_diff(J, written[None, :])]
        fd_errs += [max_abs_diff(g, fd[0]), max_abs_diff(J, fd)]
    err = max(errs + fd_errs)
    return Check(err, shapes_ok and max(errs) < TOL and max(fd_errs) < FD_TOL)


def _slide_f_perspectives(xy, w):
    return np.array(2 * w[0] * xy[0] + w[1] / xy[1])


@claim("Jacobian matrices", "f(x,y; a,b) = 2ax + b/y: df/d[x,y] = [2a, -b/y^2] (a, b constant)",
       f"f vs the formula; hand vs jacfwd/jacrev/FD at {N_POINTS} x {N_POINTS} random (x, y) and (a, b)")
def _perspective_x() -> Check:
    pts = _points((2,), 5, away_from_zero=True)
    checks, val = [], 0.0
    for w in _points((2,), 6):
        checks.append(_check_many(lambda xy: jm.f_perspectives(xy, w), lambda xy: jm.f_perspectives_dx(xy, w), pts))
        val = max(val, _values(lambda xy: jm.f_perspectives(xy, w), lambda xy: _slide_f_perspectives(xy, w), pts))
    return Check(max(val, *(c.max_error for c in checks)), val < TOL and all(c.passed for c in checks))


@claim("Jacobian matrices", "f(x,y; a,b) = 2ax + b/y: df/d[a,b] = [2x, 1/y] (x, y constant)",
       f"hand vs jacfwd/jacrev/FD at {N_POINTS} x {N_POINTS} random (a, b) and (x, y)")
def _perspective_w() -> Check:
    checks = [_check_many(lambda w: jm.f_perspectives(xy, w), lambda w: jm.f_perspectives_dw(xy, w),
                          _points((2,), 7)) for xy in _points((2,), 8, away_from_zero=True)]
    return Check(max(c.max_error for c in checks), all(c.passed for c in checks))


@claim("Vectorizing a matrix", "f(x; W) = W x, W 2x2: df/dvec[W] = [[x1, x2, 0, 0], [0, 0, x1, x2]] "
       "(ERRATUM: the slide prints row 2 as [0, 0, x3, x4]; x is in R^2)",
       "corrected matrix vs jacfwd/jacrev/FD w.r.t. vec[W] at random (W, x); the slide's matrix with any x3, x4 != x1, x2 fails")
def _vectorizing_erratum() -> Check:
    errs, slide_errs = [], []
    rng = np.random.default_rng(9)
    for x, W in zip(_points((2,), 10), _points((2, 2), 11)):
        res = gradcheck.check_jacobian(lambda M: md.linear_map(M, x), W, lambda M: md.dz_dvecW_2x2(x))
        errs.append(res.max_abs_error if res.ok else np.inf)
        x3, x4 = rng.uniform(-2, 2, size=2)
        slide = gradcheck.check_jacobian(lambda M: md.linear_map(M, x), W,
                                         lambda M: md.slide_dz_dvecW_2x2(x, x3, x4))
        slide_errs.append(slide.max_abs_error if not slide.ok else 0.0)
    return Check(max(errs), max(errs) < TOL and min(slide_errs) > 1e-3,
                 f"the slide's row 2 [0,0,x3,x4] is off by at least {min(slide_errs):.2f} at the points tried")


@claim("Matrix derivative of a vector-valued function", "vec[W] = [W11 ... W1m ... Wn1 ... Wnm] (row by row); unvec inverts it",
       "vec of a 3x4 matrix vs its entries listed row by row; unvec vs the entries placed row by row; "
       "central differences of z = unvec(v) x at v = vec(W) give the block matrix [[x^T, 0, 0], ...] "
       "written entry by entry (the lecture's dz/dvec[W] assumes this order)")
def _vec() -> Check:
    n, m = 3, 4
    W = np.arange(12.0).reshape(n, m) ** 1.5 - 4.0
    listed = np.array([W[i, j] for i in range(n) for j in range(m)])
    v = np.asarray(md.vec(jnp.asarray(W)))
    placed = np.zeros((n, m))
    for k in range(n * m):
        placed[k // m, k % m] = listed[k]
    err_vec = max_abs_diff(v, listed)
    err_unvec = max(max_abs_diff(md.unvec(jnp.asarray(listed), (n, m)), placed),
                    max_abs_diff(md.unvec(md.vec(jnp.asarray(W)), (n, m)), W))
    x = np.array([0.5, -1.0, 2.0, 0.25])
    block = np.zeros((n, n * m))
    for i in range(n):
        for j in range(m):
            block[i, i * m + j] = x[j]  # z_i = sum_j W_ij x_j: row i of W sits in columns i m .. i m + m - 1
    fd = central_differences(lambda u: np.asarray(md.linear_map(md.unvec(jnp.asarray(u), (n, m)), jnp.asarray(x))),
                             v if v.shape == (n * m,) else listed, 1.0)  # z is linear in v: any step is exact
    err_layout = max_abs_diff(fd, block)
    err = max(err_vec, err_unvec, err_layout)
    return Check(err, err_vec == 0.0 and err_unvec == 0.0 and err_layout < 1e-9)


@claim("Matrix derivative of a vector-valued function", "z = Wx, W n x m: dz/dvec[W] is n x nm, block diagonal with x^T blocks",
       "dz_dvecW(x, n) vs jacfwd/jacrev/FD w.r.t. vec[W], for (n, m) in {(1,3), (3,2), (4,5)}")
def _dz_dvecW() -> Check:
    errs, ok = [], True
    for k, (n, m) in enumerate(sized([(1, 3), (3, 2), (4, 5)], [(3, 2), (1, 3)])):
        rng = np.random.default_rng(20 + k)
        x, W = jnp.asarray(rng.normal(size=m)), jnp.asarray(rng.normal(size=(n, m)))
        res = gradcheck.check_jacobian(lambda M: md.linear_map(M, x), W, lambda M: md.dz_dvecW(x, n))
        errs.append(res.max_abs_error)
        ok &= res.ok and np.shape(md.dz_dvecW(x, n)) == (n, n * m)
    return Check(max(errs), ok)


def _J_of_z(z):
    return jnp.sum(jnp.sin(z)) + 0.5 * jnp.sum(z**2)


# The reference: autodiff of J(W x) with respect to W, compiled once per shape.
_grad_J_wrt_W = jax.jit(jax.grad(lambda W, x: _J_of_z(W @ x)))


@claim("Matrix derivative of a vector-valued function", "if J depends on z = Wx and dJ/dz = p^T, then grad_W J = p x^T "
       "(= unvec of p^T dz/dvec[W] = [p1 x^T ... pn x^T])",
       "p x^T and the unvectorized chain-rule product vs jax.grad w.r.t. W of J(z) = sum(sin z) + |z|^2/2")
def _grad_W() -> Check:
    errs = []
    for k, (n, m) in enumerate(sized([(2, 2), (3, 5), (6, 1)], [(3, 5), (2, 2)])):
        rng = np.random.default_rng(30 + k)
        x, W = rng.normal(size=m), rng.normal(size=(n, m))
        z = W @ x
        p = jnp.asarray(np.cos(z) + z)  # dJ/dz, written out
        auto = np.asarray(_grad_J_wrt_W(jnp.asarray(W), jnp.asarray(x)))
        errs.append(max_abs_diff(md.grad_W(p, jnp.asarray(x)), auto))
        errs.append(max_abs_diff(md.grad_W_via_chain(p, jnp.asarray(x)), auto))
    return Check(max(errs), max(errs) < TOL)


def _brute_force_chain(dims, i, j):
    """(cost, parenthesization) of the cheapest product of J_i .. J_j, trying every split (no table)."""
    if i == j:
        return 0, f"J{i + 1}"
    best = None
    for s in range(i, j):
        (cl, pl), (cr_, pr) = _brute_force_chain(dims, i, s), _brute_force_chain(dims, s + 1, j)
        c = cl + cr_ + dims[i] * dims[s + 1] * dims[j + 1]
        if best is None or c < best[0]:
            best = (c, f"({pl} {pr})")
    return best


@claim("Chain rule of multivariate calculus", "applying the chain rule means multiplying a sequence of Jacobians; for a scalar "
       "loss, left to right (reverse mode) is the cheap order",
       "chain_cost of a 1x100 . 100x100 . 100x100 . 100x10 chain vs multiply-adds counted here (left to right, "
       "right to left, every parenthesization tried); chain() product vs plain matmul")
def _chain_cost() -> Check:
    shapes = [(1, 100), (100, 100), (100, 100), (100, 10)]
    dims = [shapes[0][0]] + [c for _, c in shapes]
    reverse = sum(dims[0] * a * b for a, b in itertools.pairwise(dims[1:]))  # (1 x a)(a x b) at each step
    forward = sum(a * b * dims[-1] for a, b in itertools.pairwise(dims[:-1]))  # (a x b)(b x 10) at each step
    optimal, order = _brute_force_chain(dims, 0, len(shapes) - 1)
    cost = cr.chain_cost(shapes)
    counts_ok = (cost["reverse"], cost["forward"], cost["optimal"], cost["order"]) == (reverse, forward, optimal, order)
    rng = np.random.default_rng(40)
    Js = [rng.normal(size=s) for s in shapes]
    err = max_abs_diff(cr.chain(*(jnp.asarray(J) for J in Js)), Js[0] @ Js[1] @ Js[2] @ Js[3])
    return Check(err, counts_ok and reverse == optimal < forward and err < 1e-9,
                 f"reverse {cost['reverse']:,} vs forward {cost['forward']:,} multiply-adds"
                 + ("" if counts_ok else f"; counted here: reverse {reverse:,}, forward {forward:,}, "
                    f"optimal {optimal:,} {order}"))
