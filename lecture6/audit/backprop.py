"""Audit rows for gradient descent and backprop: the XOR partials, Algorithm 6.4, the softmax-CE closed
forms and the Jacobian-chain route, each against ``jax.grad`` of an objective written here anew (the
slides' scalar network, losses and MLP written without lecture6 code). Library functions are looked up
on their modules at call time, so a test can break them."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import backprop as bp
from lecture6 import chain_rule as cr
from lecture6 import xor
from lecture6.audit import Check, claim, sized
from lecture6.audit._ref import max_abs_diff
from lecture6.data import XOR_X, XOR_Y

ORDER = 40

#: Relative tolerance for a hand gradient against jax.grad in float64. Both are exact derivatives
#: evaluated with a few dozen roundings, so they agree to ~1e-15 relative; 1e-10 leaves room for
#: deeper nets and still flags any wrong term.
GRAD_RTOL = 1e-10

_S_XOR = "Gradient descent: XOR problem"
_S_ANY = "Gradient descent (any 3-layer NN)"
_S_BP = "Computing the gradients"

_ACT = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda z: z,
    "heaviside": lambda z: jnp.where(z > 0, 1.0, 0.0),
}


def _reference_J(params, X, Y, activation, loss, l2):
    """An independent objective: loop-free per-example forward pass, slide's losses written anew."""

    def one(x):
        h = x
        for k, layer in enumerate(params):
            z = jnp.dot(layer["W"], h) + layer["b"]
            h = _ACT[activation](z) if k < len(params) - 1 else z
        return h

    out = jax.vmap(one)(X)
    if loss == "mse":
        data = 0.5 * jnp.mean(jnp.sum((out - Y.reshape(out.shape)) ** 2, axis=1))
    else:
        data = -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(out, axis=1), axis=1))
    return data + 0.5 * l2 * sum(jnp.vdot(p["W"], p["W"]) for p in params)


# The reference runs eagerly: a few small problems each, where compiling every configuration costs
# more than it saves.
_reference_grad = jax.grad(_reference_J)


def _rel_err(a, b) -> float:
    """Largest entry of ``|a - b|`` over the leaves, relative to the largest entry of ``b``; inf on a
    structure or shape mismatch."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    if len(la) != len(lb):
        return float("inf")
    scale = max(float(np.max(np.abs(np.asarray(x)))) for x in lb) or 1.0
    return max(max_abs_diff(x, y) for x, y in zip(la, lb)) / scale


def _g_one(p, x):
    """The slide's 2-2-1 ReLU network, one example, written out: w5 relu(z1) + w6 relu(z2) + b3."""
    return (p["w5"] * jax.nn.relu(p["w1"] * x[0] + p["w2"] * x[1] + p["b1"])
            + p["w6"] * jax.nn.relu(p["w3"] * x[0] + p["w4"] * x[1] + p["b2"]) + p["b3"])


def _f_mse(p, X, y):
    """f_MSE = 1/(2n) sum_i (yhat_i - y_i)^2 of the network above."""
    r = jax.vmap(_g_one, in_axes=(None, 0))(p, X) - y
    return jnp.sum(r * r) / (2 * X.shape[0])


_dg_dp = jax.jit(jax.grad(_g_one))
_df_mse_dp = jax.jit(jax.grad(_f_mse))


def _named(seed):
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(v) for k, v in zip(xor.NAMES, rng.normal(size=9))}


def _problem(seed, sizes, loss, n=5):
    """A random network and batch, drawn with NumPy (eager jax.random compiles per shape)."""
    r = np.random.default_rng(seed)
    params = [{"W": jnp.asarray(r.normal(scale=0.8, size=(m, d))), "b": jnp.asarray(r.normal(scale=0.1, size=m))}
              for d, m in itertools.pairwise(sizes)]
    X = jnp.asarray(r.normal(size=(n, sizes[0])))
    if loss == "mse":
        Y = jnp.asarray(r.normal(size=(n, sizes[-1])))
    else:
        Y = jnp.asarray(np.eye(sizes[-1])[r.integers(0, sizes[-1], size=n)])
    return params, X, Y


@claim(_S_XOR, "the nine partials dyhat/dw1 = w5 sigma'(z1) x1, ..., dyhat/dw5 = sigma(z1), ..., "
       "dyhat/db2 = w6 sigma'(z2), dyhat/db3 = 1 (ReLU: sigma'(z) = 0 for z <= 0)",
       "xor.partials vs jax.grad of the scalar g(x) written here, per example, 5 random parameter draws")
def _xor_partials() -> Check:
    err = 0.0
    rng = np.random.default_rng(1)
    for _ in range(sized(5, 2)):
        named = {k: jnp.asarray(v) for k, v in zip(xor.NAMES, rng.normal(size=9))}
        hand = xor.partials(named, XOR_X)
        for i in range(4):
            ad = _dg_dp(named, jnp.asarray(XOR_X[i]))
            err = max(err, max(abs(float(np.asarray(hand[k])[i] - ad[k])) for k in xor.NAMES))
    return Check(err, err < GRAD_RTOL)


@claim(_S_XOR, "df_MSE/dp = 1/n sum_i (yhat_i - y_i) dyhat_i/dp with f_MSE = 1/(2n) sum_i (yhat_i - y_i)^2",
       "xor.mse_partials vs jax.grad of f_MSE written here and vs backprop on the 2-2-1 network")
def _xor_mse_partials() -> Check:
    named = _named(2)
    hand = xor.mse_partials(named, XOR_X, XOR_Y)
    ad = _df_mse_dp(named, jnp.asarray(XOR_X), jnp.asarray(XOR_Y))
    via_bp = xor.from_params(bp.backprop(xor.to_params(named), XOR_X, XOR_Y, activation="relu", loss="mse"))
    err = max(max(abs(float(hand[k] - ad[k])) for k in xor.NAMES),
              max(abs(float(hand[k] - via_bp[k])) for k in xor.NAMES))
    return Check(err, err < GRAD_RTOL)


@claim(_S_BP, "Algorithm 6.4: g <- grad_yhat J; for k = l..1: g <- g (.) f'(a^(k)); grad_b = g; "
       "grad_W = g h^(k-1)T + lambda W^(k); g <- W^(k)T g -- for any depth, every activation, "
       "MSE and softmax-CE, with J = L + (lambda/2) sum ||W^(k)||_F^2 (biases not regularized)",
       "backprop vs jax.grad of an independently written J: 5 activations x 2 losses, depths 1-4, "
       "lambda in {0, 0.3} (tests: many more random configurations)")
def _algorithm_6_4() -> Check:
    err = 0.0
    count = 0
    # One width throughout, so that the eager primitives compiled for one depth serve the others
    # (random widths 1-8 are covered by the tests).
    all_sizes = ([3, 3], [3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3, 3])
    configs = [(i, act, j, loss) for i, act in enumerate(_ACT) for j, loss in enumerate(("mse", "softmax_ce"))]
    for i, act, j, loss in configs:  # every activation x loss pair, in quick mode too
        depth = 1 + (i + 2 * j) % 4  # every depth meets every loss and several activations
        l2 = 0.3 if (i + j) % 2 else 0.0
        params, X, Y = _problem(100 * depth + i, all_sizes[depth - 1], loss)
        g = bp.backprop(params, X, Y, activation=act, loss=loss, l2=l2)
        ref = _reference_grad(params, X, Y, act, loss, l2)
        err = max(err, _rel_err(g, ref))
        count += 1
    return Check(err, err < GRAD_RTOL, f"{count} configurations")


def _vjp_of(J):
    def f(eps_a, eps_h):
        val, vjp = jax.vjp(J, eps_a, eps_h)
        ga, gh = vjp(jnp.ones_like(val))
        return val, ga, gh

    return f


@claim(_S_BP, "the intermediate gradients grad_{a^(k)} J (g after the (.) f') and grad_{h^(k)} J "
       "(g after W^(k)T g) of Algorithm 6.4",
       "vs jax.vjp of J with respect to additive perturbations of every z^(k) and h^(k)")
def _intermediates() -> Check:
    sizes = [3, 3, 3, 3]
    err = 0.0
    for act, loss in (("tanh", "mse"), ("relu", "softmax_ce")):
        params, X, Y = _problem(7, sizes, loss)
        _, inter = bp.backprop(params, X, Y, activation=act, loss=loss, l2=0.1, return_intermediates=True)

        def J(eps_a, eps_h, params=params, X=X, Y=Y, act=act, loss=loss):
            h = X + eps_h[0]
            for k, layer in enumerate(params):
                z = h @ layer["W"].T + layer["b"][None, :] + eps_a[k]
                h = _ACT[act](z) + eps_h[k + 1] if k < len(params) - 1 else z
            data = (0.5 * jnp.mean(jnp.sum((h - Y) ** 2, axis=1)) if loss == "mse"
                    else -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(h, axis=1), axis=1)))
            return data + 0.05 * sum(jnp.vdot(p["W"], p["W"]) for p in params)

        eps_a = [jnp.zeros((X.shape[0], s)) for s in sizes[1:]]
        eps_h = [jnp.zeros((X.shape[0], s)) for s in sizes[:-1]]
        val, ga, gh = _vjp_of(J)(eps_a, eps_h)
        err = max(err, _rel_err(inter["grad_a"], ga), _rel_err(inter["grad_h"], gh),
                  abs(float(val - inter["loss"])))
    return Check(err, err < GRAD_RTOL)


@claim(_S_BP, "softmax-CE closed forms for the 3-layer net: grad_W2 = (yhat - y) h^(1)T, grad_b2 = yhat - y, "
       "grad_W1 = g x^T, grad_b1 = g, g^T = ((yhat - y)^T W^(2)) (.) relu'(z^(1)T)",
       "softmax_ce_3layer_grads vs jax.grad of mean CE, and vs backprop, on 3 random nets of different shapes")
def _ce_closed_forms() -> Check:
    err = 0.0
    for seed, sizes in sized(((1, [3, 3, 3]), (2, [4, 5, 3]), (3, [2, 6, 4])), ((1, [3, 3, 3]), (2, [4, 5, 3]))):
        params, X, Y = _problem(seed, sizes, "softmax_ce")
        hand = bp.softmax_ce_3layer_grads(params, X, Y)
        ref = _reference_grad(params, X, Y, "relu", "softmax_ce", 0.0)
        err = max(err, _rel_err(hand, ref),
                  _rel_err(hand, bp.backprop(params, X, Y, activation="relu", loss="softmax_ce")))
    return Check(err, err < GRAD_RTOL)


@claim(_S_BP, "slide erratum: the slide prints g^T = ((yhat - y) W^(2)) (.) relu'(z^(1)T); with yhat - y a "
       "K x 1 column that product is undefined for K >= 2 -- it must be (yhat - y)^T W^(2)",
       "chain() of the printed factors raises a shape error for K = 3; the transposed product, per example "
       "with NumPy, averaged, equals jax.grad's grad_b1 of the mean CE, and so does softmax_ce_3layer_grads'")
def _ce_erratum() -> Check:
    # Width 3 and 5 examples, the shapes of the other rows (one set of compiled operations).
    params, X, Y = _problem(4, [3, 3, 3], "softmax_ce")
    W1, b1, W2, b2 = (np.asarray(a) for a in (params[0]["W"], params[0]["b"], params[1]["W"], params[1]["b"]))
    printed_fails, per_example = True, []
    for x, y in zip(np.asarray(X), np.asarray(Y)):
        z1 = W1 @ x + b1
        logits = W2 @ np.maximum(z1, 0) + b2
        yhat = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        e_col = (yhat - y)[:, None]  # K x 1
        try:
            cr.chain(jnp.asarray(e_col), jnp.asarray(W2))
            printed_fails = False
        except ValueError:
            pass
        per_example.append(np.asarray(cr.chain(jnp.asarray(e_col.T), jnp.asarray(W2)))[0] * (z1 > 0))  # g^T, 1 x 3
    gT = np.mean(per_example, axis=0)  # f_CE is the mean over the examples
    ref = _reference_grad(params, X, Y, "relu", "softmax_ce", 0.0)[0]["b"]
    ours = bp.softmax_ce_3layer_grads(params, X, Y)[0]["b"]
    err = max(max_abs_diff(gT, ref), max_abs_diff(ours, ref))
    return Check(err, printed_fails and err < GRAD_RTOL,
                 "K = 3 classes: (3x1)(3x3) is undefined" + ("" if printed_fails else "; chain() accepted it"))


@claim(_S_BP, "applying the chain rule is multiplying a sequence of Jacobian matrices: "
       "dJ/dvec[W^(k)] = dJ/dyhat . dyhat/dh . dh/dz ... dz/dvec[W^(k)], unvectorized, equals Algorithm 6.4",
       "jacobian_chain_grads (explicit hand Jacobians, chain_rule.chain, unvec) vs backprop and jax.grad, "
       "depths 1 and 3, with L2")
def _jacobian_chain() -> Check:
    err = 0.0
    for seed, sizes, act, loss in ((1, [3, 3], "relu", "mse"), (3, [3, 3, 3, 3], "tanh", "softmax_ce")):
        params, X, Y = _problem(seed, sizes, loss)
        ch = bp.jacobian_chain_grads(params, X, Y, activation=act, loss=loss, l2=0.2)
        err = max(err, _rel_err(ch, bp.backprop(params, X, Y, activation=act, loss=loss, l2=0.2)),
                  _rel_err(ch, _reference_grad(params, X, Y, act, loss, 0.2)))
    return Check(err, err < GRAD_RTOL)


@claim(_S_ANY, "grad_{W^(1)} f_MSE is the matrix [[df/dw1, df/dw2], [df/dw3, df/dw4]] of the scalar "
       "partials (and likewise for W^(2), b^(1), b^(2))",
       "backprop's params-shaped grads vs jax.grad of f_MSE written here w.r.t. the nine scalars, laid out "
       "by hand; xor.to_params and xor.mse_partials laid out the same way")
def _matrix_form() -> Check:
    named = _named(3)
    d = _df_mse_dp(named, jnp.asarray(XOR_X), jnp.asarray(XOR_Y))

    def layout(s):  # the slide's matrices from the nine scalars
        return [{"W": np.array([[s["w1"], s["w2"]], [s["w3"], s["w4"]]]), "b": np.array([s["b1"], s["b2"]])},
                {"W": np.array([[s["w5"], s["w6"]]]), "b": np.array([s["b3"]])}]

    params = [{k: jnp.asarray(v) for k, v in layer.items()} for layer in layout(named)]
    grads = bp.backprop(params, XOR_X, XOR_Y, loss="mse")
    err = max(_rel_err(grads, layout(d)), _rel_err(xor.to_params(named), layout(named)),
              _rel_err(xor.to_params(xor.mse_partials(named, XOR_X, XOR_Y)), layout(d)))
    return Check(err, err < GRAD_RTOL)
