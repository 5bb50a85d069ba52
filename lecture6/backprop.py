"""Backpropagation: Algorithm 6.4 of Goodfellow et al. for any depth, and the routes the slides compare it with.

The objective, with L2 regularization on the weights only (biases are not regularized -- the usual
choice, since a bias does not scale the input and penalizing it would only pull the outputs toward 0):

    J(theta) = L(yhat, y) + (lambda / 2) sum_k ||W^(k)||_F^2

where ``L`` is :func:`lecture6.losses.mse` (output layer linear, ``yhat = z^(l)``) or
:func:`lecture6.losses.softmax_cross_entropy` (``z^(l)`` are the logits; the softmax lives in the loss).

Algorithm 6.4, batched over the ``n`` rows of ``X`` (``g`` is ``(n, n_k)``: one row per example, and
the loss gradient already carries the ``1/n``, so summing over rows gives the mean's gradient)::

    g <- grad_yhat J = grad_yhat L(yhat, y)
    for k = l, l-1, ..., 1:
        g <- grad_{a^(k)} J = g (.) f'(a^(k))          (f' = 1 at the linear output layer)
        grad_{b^(k)} J = sum_rows g
        grad_{W^(k)} J = g^T h^(k-1) + lambda W^(k)     (per example: g h^(k-1)^T)
        g <- grad_{h^(k-1)} J = g W^(k)                  (per example: W^(k)^T g)

Here ``a^(k)`` is the slide's ``z^(k)``. Also here:

* :func:`softmax_ce_3layer_grads` -- the slide's closed forms for the 3-layer softmax network.
* :func:`jacobian_chain_grads` -- the same gradients by building every Jacobian explicitly
  (``dJ/dyhat``, ``dyhat/dh``, ``dh/dz``, ``dz/dvec[W]``), multiplying them with
  :func:`lecture6.chain_rule.chain` and unvectorizing with :func:`lecture6.matrix_derivative.unvec`: the slide's
  "applying the chain rule is equivalent to multiplying a sequence of Jacobian matrices".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lecture6.activations import get_activation, relu_grad, softmax
from lecture6.chain_rule import chain
from lecture6.losses import get_loss
from lecture6.matrix_derivative import unvec
from lecture6.mlp import check_params, forward


def _batch(X, Y):
    """A single example ``x (d,)`` becomes a batch of one (its target gains a leading axis too)."""
    X = jnp.asarray(X)
    if X.ndim == 1:
        return X[None, :], jnp.asarray(Y)[None, ...]
    if X.ndim != 2:
        raise ValueError(f"X must be (d,) or (n, d), got shape {X.shape}")
    return X, jnp.asarray(Y)


def _check_l2(l2):
    if isinstance(l2, (int, float)) and not (l2 >= 0):
        raise ValueError(f"l2 must be >= 0, got {l2!r}")


def objective(params, X, Y, *, activation: str = "relu", loss: str = "mse", l2=0.0) -> jax.Array:
    """``J = L(yhat, Y) + (l2 / 2) sum_k ||W^(k)||_F^2`` (biases not regularized); shapes as in :func:`backprop`."""
    _check_l2(l2)
    X, Y = _batch(X, Y)
    loss_fn, _ = get_loss(loss)
    out, _ = forward(params, X, activation=activation, output="identity")
    reg = sum(jnp.sum(layer["W"] * layer["W"]) for layer in params)
    return loss_fn(out, Y) + 0.5 * l2 * reg


def backprop(
    params,
    X,
    Y,
    *,
    activation: str = "relu",
    loss: str = "mse",
    l2=0.0,
    return_intermediates: bool = False,
):
    """Gradients of ``J = L + (l2/2) sum_k ||W^(k)||_F^2`` by Algorithm 6.4, for any depth.

    Args:
      params: list of layers ``{"W": (n_k, n_{k-1}), "b": (n_k,)}``.
      X: ``(n, d)`` batch (or one example ``(d,)``).
      Y: targets. ``loss="mse"``: ``(n, n_out)``, or ``(n,)`` when ``n_out == 1``.
        ``loss="softmax_ce"``: one-hot ``(n, K)`` or integer labels ``(n,)``.
      activation: hidden-layer activation name (:data:`lecture6.activations.ACTIVATIONS`).
      loss: ``"mse"`` or ``"softmax_ce"`` (the output layer is linear; for CE its output is the logits).
      l2: the regularization strength lambda (a float or a traced scalar).
      return_intermediates: also return the intermediate gradients.

    Returns:
      ``grads`` with the structure of ``params``; with ``return_intermediates``, ``(grads, inter)`` where
      ``inter = {"loss": J, "grad_yhat": (n, n_out), "grad_a": [grad_{a^(1)} J, ..., grad_{a^(l)} J],
      "grad_h": [grad_{h^(0)} J, ..., grad_{h^(l-1)} J]}`` (each ``(n, n_k)``, rows are examples;
      ``h^(0) = x``, so ``grad_h[0]`` is the gradient with respect to the input).

    Static arguments for ``jax.jit``: ``activation``, ``loss``, ``return_intermediates``.
    """
    _check_l2(l2)
    check_params(params)
    X, Y = _batch(X, Y)
    _, sigma_grad = get_activation(activation)
    loss_fn, loss_grad = get_loss(loss)
    out, cache = forward(params, X, activation=activation, output="identity")
    g = loss_grad(out, Y)  # grad_yhat J, (n, n_out); carries the 1/n of the mean
    grad_yhat = g
    n_layers = len(params)
    grads = [None] * n_layers
    grad_a = [None] * n_layers
    grad_h = [None] * n_layers
    for k in range(n_layers - 1, -1, -1):  # layer k + 1 of the slides
        if k < n_layers - 1:  # hidden layer: g <- g (.) f'(a^(k)); the output layer is linear
            g = g * sigma_grad(cache["z"][k])
        grad_a[k] = g
        W = params[k]["W"]
        grads[k] = {"W": g.T @ cache["h"][k] + l2 * W, "b": jnp.sum(g, axis=0)}
        if k > 0 or return_intermediates:
            g = g @ W  # grad_{h^(k)} J, one row per example (W^T g per column)
            grad_h[k] = g
    if not return_intermediates:
        return grads
    reg = sum(jnp.sum(layer["W"] * layer["W"]) for layer in params)
    J = loss_fn(out, Y) + 0.5 * l2 * reg
    return grads, {"loss": J, "grad_yhat": grad_yhat, "grad_a": grad_a, "grad_h": grad_h}


def value_and_backprop(params, X, Y, *, activation: str = "relu", loss: str = "mse", l2=0.0):
    """``(J, grads)`` from one forward and one backward pass (for training loops)."""
    grads, inter = backprop(params, X, Y, activation=activation, loss=loss, l2=l2,
                            return_intermediates=True)
    return inter["loss"], grads


# ---------------------------------------------------------------------------------------------------
# The slide's closed forms for the 3-layer softmax network
# ---------------------------------------------------------------------------------------------------


def softmax_ce_3layer_grads(params, X, Y):
    """The slide's closed-form softmax cross-entropy gradients of a 3-layer ReLU network.

    For one example (column vectors), with ``yhat = softmax(W^(2) h^(1) + b^(2))``,
    ``h^(1) = relu(z^(1))``, ``z^(1) = W^(1) x + b^(1)``::

        grad_{W^(2)} f_CE = (yhat - y) h^(1)T        grad_{b^(2)} f_CE = yhat - y
        grad_{W^(1)} f_CE = g x^T                     grad_{b^(1)} f_CE = g
        g^T = ((yhat - y)^T W^(2)) (.) relu'(z^(1)T)

    (The slide prints ``((yhat - y) W^(2))``: with ``yhat - y`` a column of K >= 2 classes that product
    is undefined; the transpose is needed.) Over a batch ``X (n, d)``, ``Y (n, K)`` one-hot, f_CE is the
    mean, so each gradient is the mean of the per-example ones. Returns params-shaped grads.
    """
    shapes = check_params(params)
    if len(shapes) != 2:
        raise ValueError(f"the closed forms are for a 3-layer network (2 weight layers), got {len(shapes)}")
    X, Y = _batch(X, Y)
    (W1, b1), (W2, b2) = (params[0]["W"], params[0]["b"]), (params[1]["W"], params[1]["b"])
    n = X.shape[0]
    Y = jnp.asarray(Y, dtype=W2.dtype)
    if Y.shape != (n, shapes[1][0]):
        raise ValueError(f"Y must be one-hot (n, K) = {(n, shapes[1][0])}, got shape {Y.shape}")

    def one(x, y):
        z1 = W1 @ x + b1
        h1 = jnp.where(z1 > 0, z1, 0.0)
        yhat = softmax(W2 @ h1 + b2)
        e = yhat - y  # (K,), the column yhat - y
        gT = (e @ W2) * relu_grad(z1)  # (yhat - y)^T W^(2), a row, (.) relu'(z^(1)T)
        return {"W2": jnp.outer(e, h1), "b2": e, "W1": jnp.outer(gT, x), "b1": gT}

    per = jax.vmap(one)(X, Y)
    m = {k: jnp.sum(v, axis=0) / n for k, v in per.items()}
    return [{"W": m["W1"], "b": m["b1"]}, {"W": m["W2"], "b": m["b2"]}]


# ---------------------------------------------------------------------------------------------------
# The Jacobian-chain route
# ---------------------------------------------------------------------------------------------------


def linear_jacobians(W, H):
    """Hand Jacobians of ``Z = H W^T + b`` (rows are examples), all vectorized row-major.

    Returns ``(dZ/dH, dZ/dvec[W], dZ/db)`` as 2-D matrices ``(n*m, n*d)``, ``(n*m, m*d)``, ``(n*m, m)``
    for ``W (m, d)`` and ``H (n, d)``: ``z_i = W h_i + b`` gives ``dz_i/dh_i = W`` (block diagonal),
    ``dz_ia / dW_ab = h_ib`` and ``dz_i/db = I``.
    """
    m, d = W.shape
    n = H.shape[0]
    eye_n = jnp.eye(n, dtype=W.dtype)
    eye_m = jnp.eye(m, dtype=W.dtype)
    dZ_dH = jnp.kron(eye_n, W)
    dZ_dW = jnp.einsum("ac,ib->iacb", eye_m, H).reshape(n * m, m * d)
    dZ_db = jnp.tile(eye_m, (n, 1))
    return dZ_dH, dZ_dW, dZ_db


def jacobian_chain_grads(params, X, Y, *, activation: str = "relu", loss: str = "mse", l2=0.0):
    """The gradients of :func:`backprop`, as explicit products of Jacobian matrices.

    For layer ``k`` of ``l``:
    ``dJ/dvec[W^(k)] = dJ/dyhat . dyhat/dh^(l-1) . dh^(l-1)/dz^(l-1) ... dh^(k)/dz^(k) . dz^(k)/dvec[W^(k)]``,
    every factor a 2-D matrix built by hand (``dh/dz = diag(sigma'(z))``, ``dz/dh`` from :func:`linear_jacobians`,
    ``dJ/dyhat`` the loss gradient as a row), multiplied by :func:`lecture6.chain_rule.chain` and laid back
    into the shape of ``W`` by :func:`lecture6.matrix_derivative.unvec`; then ``+ lambda W^(k)``. Quadratic in
    ``n`` and the widths: for checking on small problems, not for training.
    """
    # The same checks, forward pass and loss gradient as backprop's, written out again so that each
    # route reads from top to bottom on its own.
    _check_l2(l2)
    check_params(params)
    X, Y = _batch(X, Y)
    _, sigma_grad = get_activation(activation)
    _, loss_grad = get_loss(loss)
    out, cache = forward(params, X, activation=activation, output="identity")
    dJ_dyhat = jnp.reshape(loss_grad(out, Y), (1, -1))  # a 1 x (n n_out) Jacobian: scalar J
    n_layers = len(params)
    grads = [None] * n_layers
    upstream = [dJ_dyhat]  # dJ/dyhat, dyhat/dh^(l-1), dh^(l-1)/dz^(l-1), ... down to dz^(k+1)/...
    for k in range(n_layers - 1, -1, -1):
        W = params[k]["W"]
        dZ_dH, dZ_dW, dZ_db = linear_jacobians(W, cache["h"][k])
        gW = unvec(chain(*upstream, dZ_dW)[0], W.shape)
        gb = unvec(chain(*upstream, dZ_db)[0], params[k]["b"].shape)
        grads[k] = {"W": gW + l2 * W, "b": gb}
        if k > 0:
            dH_dZ = jnp.diag(jnp.reshape(sigma_grad(cache["z"][k - 1]), (-1,)))
            upstream = [*upstream, dZ_dH, dH_dZ]
    return grads
