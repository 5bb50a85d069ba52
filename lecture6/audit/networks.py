"""Audit rows for "3-layer NNs": activations, forward propagation, the collapse of linear networks, XOR."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import activations, mlp, xor
from lecture6.audit import Check, claim
from lecture6.data import XOR_X, XOR_Y
from lecture6.jacobian import check_jacobian

ORDER = 30

#: Hand versus reference for exact arithmetic on a few float64 operations: a few ulps.
EXACT_TOL = 1e-12

_S_ACT = "Activation functions"
_S_XOR = "XOR problem"
_S_LIN = "Crucial role of non-linearity"
_S_FWD = "Forward propagation"


def _activation_check(name: str) -> Check:
    f, fgrad = activations.get_activation(name)
    z = jnp.concatenate([jnp.linspace(-3.0, 3.0, 13), jnp.array([0.0, 1e-3, -1e-3, 0.37])])
    res = check_jacobian(f, z, lambda v: jnp.diag(fgrad(v)))
    kinks = [k for k in res.kinks]
    note = (f"{len(kinks)} kink entr{'y' if len(kinks) == 1 else 'ies'} at z = 0 accepted as "
            f"one-sided derivatives ({kinks[0].why})" if kinks else "smooth everywhere checked")
    if not res.ok:
        note = res.report()
    return Check(res.max_abs_error, res.ok, note)


@claim(_S_ACT, "Heaviside step H(z) = 1[z > 0]; H'(z) = 0 (at the jump z = 0: the finite one-sided "
       "derivative), so gradient descent cannot train it",
       "check_jacobian on 17 points incl. z = 0: jacfwd, jacrev, finite and one-sided differences")
def _heaviside() -> Check:
    return _activation_check("heaviside")


@claim(_S_ACT, "logistic sigmoid sigma(z) = 1/(1 + exp(-z)); sigma'(z) = sigma(z)(1 - sigma(z))",
       "check_jacobian on 17 points: jacfwd, jacrev, central differences")
def _sigmoid() -> Check:
    return _activation_check("sigmoid")


@claim(_S_ACT, "tanh'(z) = 1 - tanh(z)^2",
       "check_jacobian on 17 points: jacfwd, jacrev, central differences")
def _tanh() -> Check:
    return _activation_check("tanh")


@claim(_S_ACT, "ReLU(z) = max{0, z}; relu'(z) = 0 for z <= 0, 1 for z > 0 (the slide's convention, "
       "also jax.nn.relu's)",
       "check_jacobian on 17 points incl. z = 0 (subgradient check at the kink); jax.grad at 0")
def _relu() -> Check:
    c = _activation_check("relu")
    at0 = float(jax.grad(activations.relu)(0.0))
    ok = c.passed and at0 == 0.0 and float(jax.grad(jax.nn.relu)(0.0)) == 0.0
    return Check(c.max_error, ok, c.note + f"; autodiff relu'(0) = {at0:g} (jnp.maximum(z, 0) "
                 f"would give {float(jax.grad(lambda z: jnp.maximum(z, 0.0))(0.0)):g})")


@claim(_S_ACT, "ReLU's gradient is unattenuated (= 1) on half of the real line; the sigmoid's is at "
       "most 1/4", "relu'(z) on z in (0, 10]; max of sigma'(z) on a grid")
def _relu_unattenuated() -> Check:
    z = jnp.linspace(1e-6, 10.0, 1001)
    zz = jnp.linspace(-10.0, 10.0, 2001)
    err = float(jnp.max(jnp.abs(activations.relu_grad(z) - 1.0)))
    smax = float(jnp.max(activations.sigmoid_grad(zz)))
    return Check(err, err == 0.0 and abs(smax - 0.25) < EXACT_TOL, f"max sigma'(z) = {smax:.6g}")


@claim(_S_FWD, "forward propagation computes z^(k) = W^(k) h^(k-1) + b^(k), h^(k) = sigma(z^(k)) and "
       "yhat, for any depth, one example or a batch",
       "forward on a 4-layer net vs an example-by-example NumPy loop; cache z, h; batch vs single")
def _forward() -> Check:
    params = mlp.init_mlp(jax.random.key(0), [3, 5, 4, 2, 2])
    X = np.random.default_rng(1).normal(size=(4, 3))
    yhat, cache = mlp.forward(params, X, activation="tanh")
    err = 0.0
    for i in range(X.shape[0]):
        h = X[i]
        for k, layer in enumerate(params):
            z = np.asarray(layer["W"]) @ h + np.asarray(layer["b"])
            err = max(err, float(np.max(np.abs(z - np.asarray(cache["z"][k][i])))))
            if k < len(params) - 1:
                err = max(err, float(np.max(np.abs(h - np.asarray(cache["h"][k][i])))))
                h = np.tanh(z)
        err = max(err, float(np.max(np.abs(z - np.asarray(yhat[i])))))
    y1, _ = mlp.forward(params, X[2], activation="tanh")  # one example (d,) = that row of the batch
    err = max(err, float(np.max(np.abs(np.asarray(y1) - np.asarray(yhat[2])))))
    ok = err < EXACT_TOL and len(cache["z"]) == 4 and len(cache["h"]) == 4
    return Check(err, ok, "cache = {'z': [z1..z4], 'h': [x, h1, h2, h3]}")


@claim(_S_LIN, "without non-linearity g(x) = W^(2)(W^(1)x + b^(1)) + b^(2) = (W^(2)W^(1))x + "
       "W^(2)b^(1) + b^(2) = Wx + b, and deeper linear networks collapse the same way",
       "collapse_linear vs the identity-activation network at depths 2 and 4, and vs the slide's formula")
def _collapse() -> Check:
    err = 0.0
    key = jax.random.key(2)
    X = jnp.asarray(np.random.default_rng(3).normal(size=(7, 3)))
    for depth in (2, 4):
        key, sub = jax.random.split(key)
        sizes = [3] + [4] * (depth - 1) + [2]
        params = mlp.init_mlp(sub, sizes, init="normal", scale=0.7, bias_init=0.3)
        W, b = mlp.collapse_linear(params)
        y = mlp.predict(params, X, activation="identity")
        err = max(err, float(jnp.max(jnp.abs(y - (X @ W.T + b[None, :])))))
        if depth == 2:
            (W1, b1), (W2, b2) = ((p["W"], p["b"]) for p in params)
            err = max(err, float(jnp.max(jnp.abs(W - W2 @ W1))),
                      float(jnp.max(jnp.abs(b - (W2 @ b1 + b2)))))
    return Check(err, err < EXACT_TOL)


@claim(_S_LIN, "no linear model solves XOR better than chance: the least-squares affine fit is the "
       "constant 0.5 with f_MSE = 1/8",
       "normal equations (lstsq) on the 4 points; brute-force grid over (w1, w2, b) never below 1/8")
def _xor_linear() -> Check:
    w, b, f = xor.best_affine_fit()
    grid = np.linspace(-1.0, 1.5, 26)
    A = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    pred = A[:, :2] @ XOR_X.T + A[:, 2:3]
    fgrid = np.min(np.sum((pred - XOR_Y[None, :]) ** 2, axis=1) / 8)
    err = max(float(np.max(np.abs(w))), abs(b - 0.5), abs(f - 0.125))
    return Check(err, err < EXACT_TOL and fgrid >= 0.125 - EXACT_TOL,
                 f"fit w = ({w[0]:.1e}, {w[1]:.1e}), b = {b:.6g}; best grid f_MSE = {fgrid:.6g}")


@claim(_S_XOR, "W^(1) = [[2,2],[1,1]], b^(1) = [-1,-1] with ReLU 'collapse' two data points onto one "
       "hidden point -- the slide says the two NEGATIVE points; in fact it is the two POSITIVE points "
       "(0,1), (1,0) -> h = (1,0), while the negatives go to (0,0) and (3,1)",
       "h = relu(W^(1)x + b^(1)) for the 4 points vs the values computed by hand")
def _xor_hidden() -> Check:
    H = xor.hidden_points()
    expected = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 1.0]])
    err = float(np.max(np.abs(H - expected)))
    pos_same = np.array_equal(H[1], H[2])
    neg_same = np.array_equal(H[0], H[3])
    return Check(err, err == 0.0 and pos_same and not neg_same,
                 "slide erratum: positives (targets 1) collapse, negatives stay apart")


@claim(_S_XOR, "the hidden points are linearly separable: W^(2) = [1, -3], b^(2) = 0 reads out XOR "
       "exactly (g(0,0)=0, g(0,1)=1, g(1,0)=1, g(1,1)=0)",
       "solve [h 1][W2; b2] = y exactly (lstsq, residual 0), then the full network on the 4 points")
def _xor_solution() -> Check:
    W2, b2, resid = xor.solve_output_layer(xor.hidden_points(), XOR_Y)
    yhat = np.asarray(mlp.predict(xor.slide_solution(), XOR_X, activation="relu"))[:, 0]
    err = max(resid, float(np.max(np.abs(yhat - XOR_Y))),
              float(np.max(np.abs(W2 - np.array([[1.0, -3.0]])))), abs(float(b2[0])))
    return Check(err, err < EXACT_TOL, f"W2 = {np.round(W2, 12).tolist()}, b2 = {float(b2[0]):.1e}")


@claim(_S_XOR, "yhat = W^(2) sigma(W^(1)x + b^(1)) + b^(2) = w5 sigma(w1x1+w2x2+b1) + "
       "w6 sigma(w3x1+w4x2+b2) + b3 -- the slide's W^(2) = [w5; w6] is a column, for which "
       "W^(2) sigma(.) is undefined: it must be the row [w5 w6] (= [w5; w6]^T, as its next line writes)",
       "the scalar formula vs the matrix network with W^(2) = [[w5, w6]] at random parameters; "
       "the column product raises a shape error")
def _xor_row() -> Check:
    rng = np.random.default_rng(0)
    named = dict(zip(xor.NAMES, rng.normal(size=9)))
    yhat = np.asarray(mlp.predict(xor.to_params(named), XOR_X))[:, 0]
    err = float(np.max(np.abs(yhat - np.asarray(xor.g(named, XOR_X)))))
    col = np.array([[named["w5"]], [named["w6"]]])
    try:
        col @ np.ones((2, 1))
        column_fails = False
    except ValueError:
        column_fails = True
    return Check(err, err < EXACT_TOL and column_fails, "slide erratum: W^(2) must be a row (1 x 2)")
