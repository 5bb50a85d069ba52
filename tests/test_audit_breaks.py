"""Every audit row can fail: break the lecture6 function a row checks (monkeypatch it where the row looks
it up) and that row must report FAIL -- a verdict of its check, not an exception.

Each breaker returns NumPy arrays, never traceable ones: if a broken function were ever traced into a
``jax.jit`` cache it would outlive the test, so a breaker that meets a tracer raises instead (and the row
would report ``check raised``, which fails this test too).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import numpy as np
import pytest

from lecture6 import activations, audit, gaussian, mlp, ppca, xor
from lecture6 import backprop as bp
from lecture6 import chain_rule as cr
from lecture6 import jacobian as jm
from lecture6 import matrix_derivative as md
from lecture6.audit import training as training_rows


def _np(tree):
    return jax.tree.map(np.asarray, tree)


def _mse_partials_without_1_over_n(orig):
    return lambda named, X, y, **kw: {k: np.asarray(v) * len(y) for k, v in orig(named, X, y, **kw).items()}


def _partials_forgetting_x1(orig):
    def broken(named, X, **kw):
        d = _np(orig(named, X, **kw))
        return {**d, "w1": d["b1"]}  # dyhat/dw1 = w5 sigma'(z1), the factor x1 forgotten

    return broken


def _activation(name, *, f=None, grad=None):
    """A broken ``get_activation``: for ``name``, ``f`` and/or ``grad`` replaced (given the originals)."""

    def breaker(orig):
        def get_activation(n):
            f0, g0 = orig(n)
            if n != name:
                return f0, g0
            return (f(f0) if f else f0), (grad(f0, g0) if grad else g0)

        return get_activation

    return breaker


def _backprop_breaking(fix):
    """``backprop`` whose grads (and intermediates) pass through ``fix(grads, inter)`` before returning."""

    def breaker(orig):
        def backprop(params, X, Y, **kw):
            out = orig(params, X, Y, **kw)
            grads, inter = out if kw.get("return_intermediates") else (out, None)
            grads, inter = fix(_np(grads), _np(inter))
            return (grads, inter) if kw.get("return_intermediates") else grads

        return backprop

    return breaker


def _perturb_grad_h(grads, inter):
    if inter is not None:
        inter["grad_h"][0] = inter["grad_h"][0] * 1.01
    return grads, inter


def _W2_entry_off(grads, inter):
    grads[1]["W"] = grads[1]["W"].copy()
    grads[1]["W"][3, 5] *= 1.01
    return grads, inter


def _transpose_W1(grads, inter):
    grads[0]["W"] = grads[0]["W"].T
    return grads, inter


class _BrokenTrainer:
    """A trainer whose results pass through ``fix`` (a TrainResult -> TrainResult)."""

    def __init__(self, train, fix):
        self.train, self.fix = train, fix

    def __call__(self, key):
        return self.fix(self.train(key))


def _make_train_breaking(fix):
    """``make_train`` whose trainer's results pass through ``fix``. The trainer the row already compiled
    with the real ``make_train`` is reused when there is one (building it again only recompiles it)."""

    def breaker(orig):
        def make_train(config, data):
            train = training_rows._TRAINERS.get(training_rows._trainer_key(orig, config)) or orig(config, data)
            return _BrokenTrainer(train, fix)

        return make_train

    return breaker


def _half_unsolved(res):
    solved = np.asarray(res.solved).copy()
    solved[1::2] = False  # every other solved net reported as failed: about half the true rate
    return res._replace(solved=solved)


def _loss_off(res):
    return res._replace(final_loss=np.asarray(res.final_loss) + 0.01)


def _ppca_replace(orig, **scale):
    """``orig`` returning a PPCA with fields multiplied (``W=1.01``) or shifted (``b=("+", 0.01)``)."""

    def broken(*a, **kw):
        m = _np(orig(*a, **kw))
        fields = {}
        for k, v in scale.items():
            fields[k] = getattr(m, k) + v[1] if isinstance(v, tuple) else getattr(m, k) * v
        return m._replace(**fields)

    return broken


def _swap_first_two_directions(orig):
    def broken(X, k, **kw):
        V, var = _np(orig(X, k, **kw))
        return V[:, [1, 0, *range(2, k)]], var[[1, 0, *range(2, k)]]

    return broken


class Break(NamedTuple):
    claim: str  # the id of the row that must FAIL
    target: object  # the module (or object) the row looks the function up on
    name: str  # the attribute replaced
    breaker: object  # original -> broken replacement
    what: str  # the bug, in words


BREAKS = [
    # --- Jacobians, the chain rule, vec -------------------------------------------------------------
    Break("jacobians.f_example", jm, "f_example_jacobian",
          lambda o: lambda x: np.asarray(o(x)) * np.array([[1, 1], [1, 1], [1, -1]]), "sign of x1/x2^2 flipped"),
    Break("jacobians.layout", jm, "jacobian", lambda o: lambda f, x, mode="auto": np.asarray(o(f, x, mode)).T,
          "Jacobian laid out transposed (rows = inputs)"),
    Break("jacobians.perspective_x", jm, "f_perspectives_dx",
          lambda o: lambda xy, w: np.asarray(o(xy, w)) * np.array([[1, -1]]), "-b/y^2 with the wrong sign"),
    Break("jacobians.perspective_w", jm, "f_perspectives_dw",
          lambda o: lambda xy, w: np.asarray(o(xy, w)) * np.array([[0.5, 1]]), "df/da = x instead of 2x"),
    Break("jacobians.chain_example", cr, "f_chain_jacobian",
          lambda o: lambda x: np.asarray(o(x)) * np.array([[1, -1, 1]]), "df/dg2 = +2"),
    Break("jacobians.chain_example", cr, "chain", lambda o: lambda *Js: np.asarray(o(*Js)) + 1e-3,
          "chain() off by 1e-3"),
    Break("jacobians.substitution", cr, "fg_substituted", lambda o: lambda x: np.asarray(o(x)) + 1e-3,
          "substituted form off by 1e-3"),
    Break("jacobians.wrong_order", cr, "chain",
          lambda o: lambda *Js: functools.reduce(lambda A, B: np.asarray(B) @ np.asarray(A), Js),
          "chain() multiplies in the reversed order"),
    Break("jacobians.three_chain", cr, "fgh_jacobian_factors",
          lambda o: lambda x: [np.asarray(J) * (1.01 if i == 0 else 1.0) for i, J in enumerate(o(x))],
          "outermost factor 1% off"),
    Break("jacobians.chain_cost", cr, "chain_cost",
          lambda o: lambda shapes: {**o(shapes), "reverse": o(shapes)["forward"], "forward": o(shapes)["reverse"]},
          "forward and reverse counts swapped"),
    Break("jacobians.grad_vs_jac", jm, "gradient_as_jacobian_transpose",
          lambda o: lambda f, x: tuple(np.asarray(a) for a in (o(f, x)[0], o(f, x)[1].T)),
          "Jacobian returned as a column"),
    Break("jacobians.vectorizing_erratum", md, "dz_dvecW_2x2",
          lambda o: lambda x: np.asarray(o(x)) + np.array([[0, 0, 0, 0], [0, 0, 1, 0]]),
          "the slide's row 2 with x3 = x1 + 1"),
    Break("jacobians.vec", md, "vec", lambda o: lambda A: np.asarray(A).T.reshape(-1), "column-major vec"),
    Break("jacobians.vec", md, "unvec", lambda o: lambda v, shape: np.asarray(v).reshape(tuple(shape)[::-1]).T,
          "column-major unvec"),
    Break("jacobians.dz_dvecW", md, "dz_dvecW", lambda o: lambda x, n: np.kron(np.asarray(x)[None, :], np.eye(n)),
          "blocks laid out column-major"),
    Break("jacobians.grad_W", md, "grad_W", lambda o: lambda p, x: np.outer(x, p), "x p^T instead of p x^T"),
    Break("jacobians.grad_W", md, "unvec", lambda o: lambda v, shape: np.asarray(v).reshape(tuple(shape)[::-1]).T,
          "column-major unvec in the chain-rule route"),
    # --- PPCA and the Gaussian MLE ------------------------------------------------------------------
    Break("ppca.pca_directions", ppca, "max_variance_directions", _swap_first_two_directions,
          "first two directions in the wrong order"),
    Break("ppca.marginal", ppca, "log_likelihood", lambda o: lambda m, X: np.asarray(o(m, X)) + 1e-3,
          "log-density off by 1e-3"),
    Break("ppca.mle_b", ppca, "fit_gradient", lambda o: _ppca_replace(o, b=("+", 0.01)),
          "gradient route ends 0.01 from the mean"),
    Break("ppca.mle_b", ppca, "log_likelihood",
          lambda o: lambda m, X: np.asarray(o(m._replace(b=m.b + 0.1), X)), "likelihood centred at b + 0.1"),
    Break("ppca.mle_W", ppca, "fit_closed_form", lambda o: _ppca_replace(o, W=1.01), "W 1% too long"),
    Break("ppca.mle_W", ppca, "fit_em", lambda o: _ppca_replace(o, W=1.1), "EM's W 10% too long"),
    Break("ppca.weights", ppca, "fit_closed_form", lambda o: _ppca_replace(o, W=1.05), "W 5% too long"),
    Break("ppca.sampling", ppca, "sample",
          lambda o: lambda m, key, n: np.asarray(o(m._replace(sigma2=m.sigma2 * 1e-6), key, n)),
          "samples without the noise"),
    Break("ppca.posterior", ppca, "posterior",
          lambda o: lambda m, X: (np.asarray(o(m, X)[0]), np.asarray(o(m, X)[1]) / float(m.sigma2)),
          "posterior covariance without sigma2"),
    Break("ppca.normalizer", ppca, "log_likelihood", lambda o: lambda m, X: np.asarray(o(m, X)) + 1e-3,
          "log-density off by 1e-3"),
    Break("ppca.gaussian_mle", gaussian, "mle",
          lambda o: lambda X: (o(X)[0], o(X)[1] * len(X) / (len(X) - 1)), "unbiased 1/(n-1) covariance"),
    Break("ppca.factorization", gaussian, "total_log_likelihood",
          lambda o: lambda mu, S, X: np.asarray(o(mu, S, X)) / len(X), "mean instead of sum over points"),
    # --- Activations, forward propagation, XOR ------------------------------------------------------
    Break("networks.heaviside", activations, "get_activation",
          _activation("heaviside", grad=lambda f, g: lambda z: np.asarray(g(z)) + 1e-3), "H' = 1e-3, not 0"),
    Break("networks.sigmoid", activations, "get_activation",
          _activation("sigmoid", grad=lambda f, g: lambda z: np.asarray(f(z)) * (1 - np.asarray(f(z))) ** 2),
          "sigma (1 - sigma)^2"),
    Break("networks.tanh", activations, "get_activation",
          _activation("tanh", grad=lambda f, g: lambda z: 1 - np.asarray(f(z))), "1 - tanh, square forgotten"),
    Break("networks.relu", activations, "get_activation",
          _activation("relu", grad=lambda f, g: lambda z: (np.asarray(z) >= 0).astype(float)), "relu'(0) = 1"),
    Break("networks.relu_unattenuated", activations, "get_activation",
          _activation("relu", grad=lambda f, g: lambda z: 0.5 * np.asarray(g(z))), "relu' = 1/2 for z > 0"),
    Break("networks.relu_unattenuated", activations, "get_activation",
          _activation("sigmoid", f=lambda f: lambda z: np.asarray(f(2 * np.asarray(z)))), "sigma(2z), slope 1/2"),
    Break("networks.forward", mlp, "forward",
          lambda o: lambda params, X, **kw: _np(o([{**p, "b": 0 * p["b"]} for p in params], X, **kw)),
          "biases ignored"),
    Break("networks.collapse", mlp, "collapse_linear",
          lambda o: lambda params: (np.asarray(o(params)[0]), np.asarray(params[-1]["b"])), "b = b^(l) only"),
    Break("networks.xor_linear", xor, "best_affine_fit",
          lambda o: lambda *a: (o(*a)[0], o(*a)[1] + 0.01, o(*a)[2]), "intercept off by 0.01"),
    Break("networks.xor_hidden", xor, "hidden_points",
          lambda o: lambda *a, **kw: o(*a, **{**kw, "activation": "tanh"}), "tanh instead of ReLU"),
    Break("networks.xor_solution", xor, "solve_output_layer",
          lambda o: lambda H, y: (o(H, y)[0] * 1.01, o(H, y)[1], o(H, y)[2]), "W2 1% off"),
    Break("networks.xor_row", xor, "g",
          lambda o: lambda named, X, **kw: np.asarray(o({**named, "w5": named["w6"], "w6": named["w5"]}, X, **kw)),
          "w5 and w6 swapped in the scalar formula"),
    Break("networks.xor_row", mlp, "check_params",
          lambda o: lambda params: [tuple(np.shape(p["W"])) for p in params], "any layer shapes accepted"),
    Break("networks.xor_row", xor, "to_params",
          lambda o: lambda named: [o(named)[0], {"W": np.asarray(o(named)[1]["W"]).T, "b": o(named)[1]["b"]}],
          "W^(2) stored as the column (2 x 1)"),
    # --- Backprop -----------------------------------------------------------------------------------
    Break("backprop.xor_partials", xor, "partials", _partials_forgetting_x1, "dyhat/dw1 without x1"),
    Break("backprop.xor_mse_partials", xor, "mse_partials", _mse_partials_without_1_over_n, "the 1/n forgotten"),
    Break("backprop.algorithm_6_4", bp, "backprop", lambda o: lambda *a, **kw: _np(o(*a, **{**kw, "l2": 0.0})),
          "the lambda W term forgotten"),
    Break("backprop.intermediates", bp, "backprop", _backprop_breaking(_perturb_grad_h), "grad_h^(0) 1% off"),
    Break("backprop.ce_closed_forms", bp, "softmax_ce_3layer_grads",
          lambda o: lambda *a: [_np(o(*a)[0]), {"W": np.asarray(o(*a)[1]["W"]).T, "b": np.asarray(o(*a)[1]["b"])}],
          "grad_W2 = h (yhat - y)^T"),
    Break("backprop.ce_erratum", cr, "chain",
          lambda o: lambda *Js: functools.reduce(lambda A, B: np.asarray(A) * np.asarray(B), Js),
          "chain() broadcasts instead of checking shapes"),
    Break("backprop.ce_erratum", bp, "softmax_ce_3layer_grads",
          lambda o: lambda *a: [{"W": np.asarray(o(*a)[0]["W"]), "b": np.asarray(o(*a)[0]["b"]) * 1.01},
                                _np(o(*a)[1])], "grad_b1 1% off"),
    Break("backprop.jacobian_chain", bp, "jacobian_chain_grads",
          lambda o: lambda *a, **kw: _np(o(*a, **{**kw, "l2": 0.0})), "the lambda W term forgotten"),
    Break("mnist.algorithm_6_4", bp, "backprop", _backprop_breaking(_W2_entry_off), "grad_W2[3, 5] 1% off"),
    Break("backprop.matrix_form", bp, "backprop", _backprop_breaking(_transpose_W1), "grad_W1 transposed"),
    Break("backprop.matrix_form", xor, "to_params",
          lambda o: lambda named: [{"W": np.asarray(o(named)[0]["W"]).T, "b": o(named)[0]["b"]}, o(named)[1]],
          "W^(1) laid out transposed"),
    # --- Training -----------------------------------------------------------------------------------
    Break("training.gd_solves_xor", training_rows, "make_train", _make_train_breaking(_half_unsolved),
          "half the solved nets reported as failed"),
    Break("training.linear_never_solves", training_rows, "make_train", _make_train_breaking(_loss_off),
          "final loss 0.01 too high"),
]

_CLAIMS = {c.id: c for c in audit.claims()}


def test_every_row_has_a_breaking_test():
    assert {b.claim for b in BREAKS} == set(_CLAIMS)


@pytest.mark.parametrize("brk", BREAKS, ids=[f"{b.claim}:{b.name}" for b in BREAKS])
def test_breaking_the_library_fails_the_row(brk, monkeypatch):
    claim = _CLAIMS[brk.claim]
    before = audit.run_claim(claim, quick=True)
    assert before.passed, f"{brk.claim} fails before the break: {before.note}"
    monkeypatch.setattr(brk.target, brk.name, brk.breaker(getattr(brk.target, brk.name)))
    row = audit.run_claim(claim, quick=True)
    assert not row.passed, f"{brk.claim} still PASSES with {brk.name}: {brk.what}"
    assert not row.note.startswith("check raised"), f"{brk.claim} crashed instead of failing: {row.note}"
