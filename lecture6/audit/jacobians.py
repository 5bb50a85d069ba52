"""Audit rows for the first part of the lecture: Jacobians, the chain rule, vectorizing a matrix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import chain_rule as cr
from lecture6 import matrix_derivative as md
from lecture6.audit import Check, claim
from lecture6.jacobian import chain, chain_cost, check_jacobian, unvec, vec

ORDER = 10

#: Hand versus autodiff in float64: a few ulps times the depth of the computation.
TOL = 1e-10
N_POINTS = 5


def _points(shape, seed, low=-2.0, high=2.0, away_from_zero=False):
    rng = np.random.default_rng(seed)
    pts = rng.uniform(low, high, size=(N_POINTS, *shape))
    if away_from_zero:  # keep denominators such as 1/x2 well away from 0
        pts = np.sign(pts) * (0.5 + np.abs(pts))
    return [jnp.asarray(p) for p in pts]


def _check_many(f, jac, points) -> Check:
    results = [check_jacobian(f, x, jac) for x in points]
    err = max(max(r.max_abs_error, float(np.max(np.abs(r.jacobians["fd"] - r.jacobians["jacfwd"]))))
              for r in results)
    bad = [r for r in results if not r.ok]
    return Check(err, not bad, bad[0].report().splitlines()[2].strip() if bad else "")


@claim("Jacobian matrices", "f([x1,x2]) = [2x1+x2, pi x2, -x1/x2] has Jacobian [[2,1],[0,pi],[-1/x2, x1/x2^2]]",
       f"hand vs jacfwd, jacrev and central FD at {N_POINTS} random points")
def _f_example() -> Check:
    return _check_many(cr.f_example, cr.f_example_jacobian, _points((2,), 0, away_from_zero=True))


@claim("Jacobian matrices", "for f: R^m -> R^n the Jacobian is n x m: rows are the outputs, columns the inputs",
       "shape of jax.jacfwd(f) for f: R^2 -> R^3; entry (3,2) = d f3 / d x2 = x1/x2^2")
def _layout() -> Check:
    x = jnp.array([1.5, -0.7])
    J = jax.jacfwd(cr.f_example)(x)
    err = abs(float(J[2, 1]) - 1.5 / 0.7**2)
    return Check(err, J.shape == (3, 2) and err < TOL)


@claim("Chain rule of multivariate calculus", "d(f o g)/dx = df/dg dg/dx = [1, -2, 1/4] [[1,2],[0,1],[-1,0]] = [3/4, 0]",
       "the slide's product of Jacobians vs [3/4, 0] and vs jacfwd of f(g(x)) at random points")
def _chain_example() -> Check:
    errs = []
    for x in _points((2,), 1):
        product = chain(cr.f_chain_jacobian(x), cr.g_chain_jacobian(x))
        errs.append(float(jnp.max(jnp.abs(product - jnp.array([[0.75, 0.0]])))))
        errs.append(float(jnp.max(jnp.abs(product - jax.jacfwd(lambda v: cr.f_chain(cr.g_chain(v)))(x)))))
    return Check(max(errs), max(errs) < TOL)


@claim("Chain rule of multivariate calculus", "by substitution f(g(x)) = x1 + 2x2 - 2x2 + (-x1+3)/4 = 3/4 (x1 + 1)",
       "f(g(x)) vs 3/4 (x1+1) at random points; its Jacobian [3/4, 0] by check_jacobian")
def _substitution() -> Check:
    pts = _points((2,), 2)
    err = max(float(jnp.max(jnp.abs(cr.f_chain(cr.g_chain(x)) - cr.fg_substituted(x)))) for x in pts)
    check = _check_many(lambda v: cr.f_chain(cr.g_chain(v)), cr.fg_jacobian, pts)
    return Check(max(err, check.max_error), err < TOL and check.passed, check.note)


@claim("Chain rule of multivariate calculus", "the chain rule in the wrong order, dg/dx df/dg, is wrong",
       "dg/dx (3x2) times df/dg (1x3) is undefined; for square maps the reversed product differs from jacfwd")
def _wrong_order() -> Check:
    x = jnp.array([0.3, -1.1])
    undefined = False
    try:
        chain(cr.g_chain_jacobian(x), cr.f_chain_jacobian(x))
    except ValueError:
        undefined = True
    # Square case: h o h, both 2x2 and not commuting.
    right = chain(cr.h_chain_jacobian(cr.h_chain(x)), cr.h_chain_jacobian(x))
    wrong = cr.h_chain_jacobian(x) @ cr.h_chain_jacobian(cr.h_chain(x))
    truth = jax.jacfwd(lambda v: cr.h_chain(cr.h_chain(v)))(x)
    err_right = float(jnp.max(jnp.abs(right - truth)))
    gap_wrong = float(jnp.max(jnp.abs(wrong - truth)))
    return Check(err_right, undefined and err_right < TOL and gap_wrong > 1e-3,
                 f"reversed product is off by {gap_wrong:.2f} for h o h")


@claim("Chain rule of multivariate calculus", "d(f o g o h)/dx = df/dg dg/dh dh/dx, each evaluated at its own input",
       "chain() of the three hand Jacobians vs jacfwd/jacrev/FD of f(g(h(x))) at random points")
def _three_chain() -> Check:
    return _check_many(cr.fgh, lambda x: chain(*cr.fgh_jacobian_factors(x)), _points((2,), 3))


@claim("Jacobian versus gradient", "for f: R^m -> R the Jacobian (1 x m) is the transpose of the gradient (m)",
       "jax.grad vs jax.jacrev of 2ax + b/y; both accepted by check_jacobian")
def _grad_vs_jac() -> Check:
    w = jnp.array([0.7, -1.3])

    def f(xy):
        return cr.f_perspectives(xy, w)

    errs = []
    for xy in _points((2,), 4, away_from_zero=True):
        g, J = cr.gradient_as_jacobian_transpose(f, xy)
        errs.append(float(jnp.max(jnp.abs(J - g[None, :]))))
        ok = check_jacobian(f, xy, jax.grad(f)).ok and check_jacobian(f, xy, lambda v: J).ok
        errs.append(0.0 if ok else np.inf)
    return Check(max(errs), g.shape == (2,) and J.shape == (1, 2) and max(errs) < TOL)


@claim("Jacobian matrices", "f(x,y; a,b) = 2ax + b/y: df/d[x,y] = [2a, -b/y^2] (a, b constant)",
       f"hand vs jacfwd/jacrev/FD at {N_POINTS} random (x, y, a, b)")
def _perspective_x() -> Check:
    checks = [_check_many(lambda xy: cr.f_perspectives(xy, w), lambda xy: cr.f_perspectives_dx(xy, w),
                          _points((2,), 5, away_from_zero=True)) for w in _points((2,), 6)]
    return Check(max(c.max_error for c in checks), all(c.passed for c in checks))


@claim("Jacobian matrices", "f(x,y; a,b) = 2ax + b/y: df/d[a,b] = [2x, 1/y] (x, y constant)",
       f"hand vs jacfwd/jacrev/FD at {N_POINTS} random (x, y, a, b)")
def _perspective_w() -> Check:
    checks = [_check_many(lambda w: cr.f_perspectives(xy, w), lambda w: cr.f_perspectives_dw(xy, w),
                          _points((2,), 7)) for xy in _points((2,), 8, away_from_zero=True)]
    return Check(max(c.max_error for c in checks), all(c.passed for c in checks))


@claim("Vectorizing a matrix", "f(x; W) = W x, W 2x2: df/dvec[W] = [[x1, x2, 0, 0], [0, 0, x1, x2]] "
       "(ERRATUM: the slide prints row 2 as [0, 0, x3, x4]; x is in R^2)",
       "corrected matrix vs jacfwd/jacrev/FD w.r.t. vec[W] at random (W, x); the slide's matrix with any x3, x4 != x1, x2 fails")
def _vectorizing_erratum() -> Check:
    errs, slide_errs = [], []
    rng = np.random.default_rng(9)
    for x, W in zip(_points((2,), 10), _points((2, 2), 11)):
        res = check_jacobian(lambda M: md.linear_map(M, x), W, lambda M: md.dz_dvecW_2x2(x))
        errs.append(res.max_abs_error if res.ok else np.inf)
        x3, x4 = rng.uniform(-2, 2, size=2)
        slide = check_jacobian(lambda M: md.linear_map(M, x), W, lambda M: md.slide_dz_dvecW_2x2(x, x3, x4))
        slide_errs.append(slide.max_abs_error if not slide.ok else 0.0)
    return Check(max(errs), max(errs) < TOL and min(slide_errs) > 1e-3,
                 f"the slide's row 2 [0,0,x3,x4] is off by at least {min(slide_errs):.2f} at the points tried")


@claim("Matrix derivative of a vector-valued function", "vec[W] = [W11 ... W1m ... Wn1 ... Wnm] (row by row); unvec inverts it",
       "vec of a 3x4 matrix against its entries listed row by row; unvec(vec(W)) == W")
def _vec() -> Check:
    W = jnp.arange(12.0).reshape(3, 4) ** 1.5
    listed = jnp.array([W[i, j] for i in range(3) for j in range(4)])
    err = float(jnp.max(jnp.abs(vec(W) - listed)) + jnp.max(jnp.abs(unvec(vec(W), W.shape) - W)))
    return Check(err, err == 0.0)


@claim("Matrix derivative of a vector-valued function", "z = Wx, W n x m: dz/dvec[W] is n x nm, block diagonal with x^T blocks",
       "dz_dvecW(x, n) vs jacfwd/jacrev/FD w.r.t. vec[W], for (n, m) in {(1,3), (3,2), (4,5)}")
def _dz_dvecW() -> Check:
    errs, ok = [], True
    for k, (n, m) in enumerate([(1, 3), (3, 2), (4, 5)]):
        rng = np.random.default_rng(20 + k)
        x, W = jnp.asarray(rng.normal(size=m)), jnp.asarray(rng.normal(size=(n, m)))
        res = check_jacobian(lambda M: md.linear_map(M, x), W, lambda M: md.dz_dvecW(x, n))
        errs.append(res.max_abs_error)
        ok &= res.ok and res.jacobians["jacfwd"].shape == (n, n * m)
    return Check(max(errs), ok)


@claim("Matrix derivative of a vector-valued function", "if J depends on z = Wx and dJ/dz = p^T, then grad_W J = p x^T "
       "(= unvec of p^T dz/dvec[W] = [p1 x^T ... pn x^T])",
       "p x^T and the unvectorized chain-rule product vs jax.grad w.r.t. W of J(z) = sum(sin z) + |z|^2/2")
def _grad_W() -> Check:
    def J(z):
        return jnp.sum(jnp.sin(z)) + 0.5 * jnp.sum(z**2)

    errs = []
    for k, (n, m) in enumerate([(2, 2), (3, 5), (6, 1)]):
        rng = np.random.default_rng(30 + k)
        x, W = jnp.asarray(rng.normal(size=m)), jnp.asarray(rng.normal(size=(n, m)))
        p = jax.grad(J)(W @ x)
        auto = jax.grad(lambda M: J(M @ x))(W)
        errs.append(float(jnp.max(jnp.abs(md.grad_W(p, x) - auto))))
        errs.append(float(jnp.max(jnp.abs(md.grad_W_via_chain(p, x) - auto))))
    return Check(max(errs), max(errs) < TOL)


@claim("Chain rule of multivariate calculus", "applying the chain rule means multiplying a sequence of Jacobians; for a scalar "
       "loss, left to right (reverse mode) is the cheap order",
       "chain_cost of a 1x100 . 100x100 . 100x100 . 100x10 chain: reverse vs forward multiply-adds; chain() "
       "product vs plain matmul")
def _chain_cost() -> Check:
    shapes = [(1, 100), (100, 100), (100, 100), (100, 10)]
    cost = chain_cost(shapes)
    rng = np.random.default_rng(40)
    Js = [jnp.asarray(rng.normal(size=s)) for s in shapes]
    err = float(jnp.max(jnp.abs(chain(*Js) - Js[0] @ Js[1] @ Js[2] @ Js[3])))
    return Check(err, cost["reverse"] == cost["optimal"] < cost["forward"] and err < 1e-9,
                 f"reverse {cost['reverse']:,} vs forward {cost['forward']:,} multiply-adds")
