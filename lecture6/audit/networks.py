"""Audit rows for "3-layer NNs": activations, forward propagation, the collapse of linear networks, XOR.

Each row checks lecture6 code (looked up on its module at call time, so a test can break it) against
autodiff and finite differences, or against a formula, a loop or a brute force written here in NumPy.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import activations, gradcheck, mlp, xor
from lecture6.audit import Check, claim, sized
from lecture6.audit._ref import max_abs_diff
from lecture6.data import XOR_X, XOR_Y

ORDER = 30

#: Hand versus reference for exact arithmetic on a few float64 operations: a few ulps.
EXACT_TOL = 1e-12

_S_ACT = "Activation functions"
_S_XOR = "XOR problem"
_S_LIN = "Crucial role of non-linearity"
_S_FWD = "Forward propagation"

#: The activations as the slides define them, written with NumPy.
_SLIDE_ACTIVATIONS = {
    "heaviside": lambda z: (z > 0).astype(np.float64),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
}


def _activation_check(name: str) -> Check:
    f, fgrad = activations.get_activation(name)
    z = jnp.concatenate([jnp.linspace(-3.0, 3.0, 13), jnp.array([0.0, 1e-3, -1e-3, 0.37])])
    val = max_abs_diff(f(z), _SLIDE_ACTIVATIONS[name](np.asarray(z)))
    res = gradcheck.check_jacobian(f, z, lambda v: jnp.diag(fgrad(v)))
    kinks = [k for k in res.kinks]
    note = (f"{len(kinks)} kink entr{'y' if len(kinks) == 1 else 'ies'} at z = 0 accepted as "
            f"one-sided derivatives ({kinks[0].why})" if kinks else "smooth everywhere checked")
    if not res.ok:
        note = res.report()
    elif val >= EXACT_TOL:
        note = f"{name}(z) differs from the slide's formula by {val:.2g}"
    return Check(max(val, res.max_abs_error), res.ok and val < EXACT_TOL, note)


@claim(_S_ACT, "Heaviside step H(z) = 1[z > 0]; H'(z) = 0 (at the jump z = 0: the finite one-sided "
       "derivative), so gradient descent cannot train it",
       "values vs 1[z > 0]; check_jacobian on 17 points incl. z = 0: jacfwd, jacrev, finite and one-sided differences")
def _heaviside() -> Check:
    return _activation_check("heaviside")


@claim(_S_ACT, "logistic sigmoid sigma(z) = 1/(1 + exp(-z)); sigma'(z) = sigma(z)(1 - sigma(z))",
       "values vs 1/(1 + exp(-z)); check_jacobian on 17 points: jacfwd, jacrev, central differences")
def _sigmoid() -> Check:
    return _activation_check("sigmoid")


@claim(_S_ACT, "tanh'(z) = 1 - tanh(z)^2",
       "values vs np.tanh; check_jacobian on 17 points: jacfwd, jacrev, central differences")
def _tanh() -> Check:
    return _activation_check("tanh")


@claim(_S_ACT, "ReLU(z) = max{0, z}; relu'(z) = 0 for z <= 0, 1 for z > 0 (the slide's convention, "
       "also jax.nn.relu's)",
       "values vs max(z, 0); check_jacobian on 17 points incl. z = 0 (subgradient check at the kink); "
       "relu_grad(0) and jax.grad of relu at 0 vs the slide's 0, and jax.nn.relu's")
def _relu() -> Check:
    c = _activation_check("relu")
    relu, relu_grad = activations.get_activation("relu")
    hand0 = float(relu_grad(jnp.array([0.0]))[0])
    at0 = float(jax.grad(lambda z: relu(z)[0])(jnp.array([0.0]))[0])
    ours_ok = hand0 == 0.0 and at0 == 0.0
    ok = c.passed and ours_ok and float(jax.grad(jax.nn.relu)(0.0)) == 0.0
    return Check(c.max_error, ok, c.note + f"; relu_grad(0) = {hand0:g}, autodiff relu'(0) = {at0:g} "
                 f"(jnp.maximum(z, 0) would give {float(jax.grad(lambda z: jnp.maximum(z, 0.0))(0.0)):g})")


@claim(_S_ACT, "ReLU's gradient is unattenuated (= 1) on half of the real line; the sigmoid's is at "
       "most 1/4", "central differences of relu on (0, 10] (= 1) and of sigmoid on [-10, 10] (max 1/4, "
       "at z = 0); the hand derivatives relu_grad and sigmoid_grad vs those differences")
def _relu_unattenuated() -> Check:
    relu, relu_grad = activations.get_activation("relu")
    sigmoid, sigmoid_grad = activations.get_activation("sigmoid")
    z = np.linspace(0.01, 10.0, sized(1000, 100))  # the step below never reaches the kink at 0
    zz = np.linspace(-10.0, 10.0, sized(2001, 201))  # includes z = 0
    h_relu, h_sig = 1e-3, 1e-5

    def fd(f, z, h):
        return (np.asarray(f(jnp.asarray(z + h))) - np.asarray(f(jnp.asarray(z - h)))) / (2 * h)

    fd_relu, fd_sig = fd(relu, z, h_relu), fd(sigmoid, zz, h_sig)
    err_relu = max(max_abs_diff(fd_relu, np.ones_like(z)), max_abs_diff(relu_grad(jnp.asarray(z)), fd_relu))
    err_sig = max_abs_diff(sigmoid_grad(jnp.asarray(zz)), fd_sig)
    smax, at = float(np.max(fd_sig)), float(zz[np.argmax(fd_sig)])
    # relu is linear on (0, 10]: its central difference is exact up to rounding (~1e-13); the sigmoid's
    # with step 1e-5 is within ~1e-11 of the derivative.
    ok = err_relu < 1e-9 and err_sig < 1e-8 and abs(smax - 0.25) < 1e-8 and abs(at) < 1e-9
    return Check(max(err_relu, err_sig, abs(smax - 0.25)), ok,
                 f"max sigma'(z) = {smax:.6g} at z = {at:.2g}")


def _numpy_params(seed, sizes, scale=0.8, bias_scale=0.3):
    """A random network drawn with NumPy (eager jax.random compiles per shape)."""
    r = np.random.default_rng(seed)
    return [{"W": jnp.asarray(r.normal(scale=scale, size=(m, d))), "b": jnp.asarray(r.normal(scale=bias_scale, size=m))}
            for d, m in itertools.pairwise(sizes)]


@claim(_S_FWD, "forward propagation computes z^(k) = W^(k) h^(k-1) + b^(k), h^(k) = sigma(z^(k)) and "
       "yhat, for any depth, one example or a batch",
       "forward on a 4-layer net vs an example-by-example NumPy loop; cache z, h; batch vs single")
def _forward() -> Check:
    # Width 3 and 5 examples throughout, the shapes of the backprop rows: one set of compiled operations.
    params = _numpy_params(0, [3, 3, 3, 3, 3])
    X = np.random.default_rng(1).normal(size=(5, 3))
    yhat, cache = mlp.forward(params, jnp.asarray(X), activation="tanh")
    n_layers = len(params)
    if len(cache["z"]) != n_layers or len(cache["h"]) != n_layers:
        return Check(None, False, f"cache has {len(cache['z'])} z and {len(cache['h'])} h, expected {n_layers} each")
    err = 0.0
    for i in range(X.shape[0]):
        h = X[i]
        for k, layer in enumerate(params):
            z = np.asarray(layer["W"]) @ h + np.asarray(layer["b"])
            err = max(err, max_abs_diff(z, np.asarray(cache["z"][k])[i]), max_abs_diff(h, np.asarray(cache["h"][k])[i]))
            h = np.tanh(z)
        err = max(err, max_abs_diff(z, np.asarray(yhat)[i]))
    y1, _ = mlp.forward(params, jnp.asarray(X[2]), activation="tanh")  # one example (d,) = that row of the batch
    err = max(err, max_abs_diff(y1, np.asarray(yhat)[2]))
    return Check(err, err < EXACT_TOL, "cache = {'z': [z1..z4], 'h': [x, h1, h2, h3]}")


@claim(_S_LIN, "without non-linearity g(x) = W^(2)(W^(1)x + b^(1)) + b^(2) = (W^(2)W^(1))x + "
       "W^(2)b^(1) + b^(2) = Wx + b, and deeper linear networks collapse the same way",
       "collapse_linear vs a layer-by-layer NumPy loop of affine maps at depths 2 and 4, and vs the slide's formula")
def _collapse() -> Check:
    err = 0.0
    X = np.random.default_rng(3).normal(size=(5, 3))
    for depth in (2, 4):
        params = _numpy_params(depth, [3] * (depth + 1), scale=0.7)
        W, b = (np.asarray(a) for a in mlp.collapse_linear(params))
        Y = X
        for layer in params:  # the network without activation, one affine map after another
            Y = Y @ np.asarray(layer["W"]).T + np.asarray(layer["b"])[None, :]
        err = max(err, max_abs_diff(X @ W.T + b[None, :], Y) if W.shape == (3, 3) and b.shape == (3,) else np.inf)
        if depth == 2:
            (W1, b1), (W2, b2) = ((np.asarray(p["W"]), np.asarray(p["b"])) for p in params)
            err = max(err, max_abs_diff(W, W2 @ W1), max_abs_diff(b, W2 @ b1 + b2))
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
       "the scalar formula written here in NumPy vs xor.g and vs the matrix network with W^(2) = [[w5, w6]] "
       "at random parameters; a network with the column W^(2) is rejected (shape error)")
def _xor_row() -> Check:
    rng = np.random.default_rng(0)
    named = dict(zip(xor.NAMES, rng.normal(size=9)))
    p = named
    x1, x2 = XOR_X[:, 0], XOR_X[:, 1]
    written = (p["w5"] * np.maximum(p["w1"] * x1 + p["w2"] * x2 + p["b1"], 0.0)
               + p["w6"] * np.maximum(p["w3"] * x1 + p["w4"] * x2 + p["b2"], 0.0) + p["b3"])
    params = xor.to_params(named)
    row_shape = tuple(np.shape(params[1]["W"]))
    if row_shape != (1, 2):
        return Check(None, False, f"xor.to_params gives W^(2) the shape {row_shape}, not the row (1, 2)")
    yhat = np.asarray(mlp.predict(params, XOR_X))[:, 0]
    err = max(max_abs_diff(yhat, written), max_abs_diff(xor.g(named, XOR_X), written))
    column = [params[0], {"W": jnp.asarray([[p["w5"]], [p["w6"]]]), "b": params[1]["b"]}]
    try:
        mlp.check_params(column)
        column_fails = False
    except ValueError:
        column_fails = True
    return Check(err, err < EXACT_TOL and column_fails,
                 "slide erratum: W^(2) must be a row (1 x 2)"
                 + ("" if column_fails else "; a network with the column W^(2) (2 x 1) was accepted"))
