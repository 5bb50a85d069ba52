"""The lecture's loss functions, each with its hand-written gradient with respect to the network output.

Shapes (rows are examples, as everywhere in the package):

* :func:`mse` ``f_MSE = 1/(2n) sum_i ||yhat_i - y_i||^2`` -- exactly the slide's cost, with the 1/2 and
  the mean over the ``n`` examples. ``yhat`` is ``(n, k)`` or ``(n,)`` (n scalar outputs); ``y`` has
  the shape of ``yhat``, or is ``(n,)`` when ``yhat`` is ``(n, 1)`` (a single-output network, such as
  XOR's). :func:`mse_grad` is ``(yhat - y) / n`` in the shape of ``yhat``.
* :func:`softmax_cross_entropy` takes the **logits** ``z`` ``(n, K)`` (the linear output layer; the
  softmax is applied here, stably: ``jax.nn.log_softmax`` subtracts the max before the log-sum-exp)
  and one-hot targets ``(n, K)`` (integer labels ``(n,)`` are one-hot encoded). It is
  ``-1/n sum_i sum_k y_ik log softmax(z_i)_k``. A 1-D ``z`` ``(K,)`` is one example.
  :func:`softmax_cross_entropy_grad` is ``(softmax(z) - y) / n``, the slide's ``yhat - y`` averaged
  over the batch.

``LOSSES`` maps ``"mse"`` and ``"softmax_ce"`` to ``(loss, loss_grad)``; :func:`get_loss` looks one up.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _inexact(a) -> jax.Array:
    a = jnp.asarray(a)
    if not jnp.issubdtype(a.dtype, jnp.inexact):
        a = a.astype(jnp.result_type(float))
    return a


def _mse_targets(yhat: jax.Array, y) -> jax.Array:
    """``y`` in the shape of ``yhat`` (``(n,)`` targets for a ``(n, 1)`` output are reshaped)."""
    y = jnp.asarray(y, dtype=yhat.dtype)
    if y.shape == yhat.shape:
        return y
    if yhat.ndim == 2 and yhat.shape[1] == 1 and y.shape == (yhat.shape[0],):
        return y[:, None]
    raise ValueError(
        f"mse: targets y of shape {y.shape} do not match predictions yhat of shape {yhat.shape}; "
        "y must have the shape of yhat, or be (n,) when yhat is (n, 1)"
    )


def _n_examples(yhat: jax.Array, name: str) -> int:
    if yhat.ndim not in (1, 2):
        raise ValueError(f"{name}: predictions must be (n,) or (n, k), got shape {yhat.shape}")
    if yhat.shape[0] == 0:
        raise ValueError(f"{name}: no examples (yhat has shape {yhat.shape})")
    return yhat.shape[0]


def mse(yhat, y) -> jax.Array:
    """``f_MSE = 1/(2n) sum_i ||yhat_i - y_i||^2``; ``yhat`` ``(n, k)`` or ``(n,)``, ``y`` likewise (see module)."""
    yhat = _inexact(yhat)
    n = _n_examples(yhat, "mse")
    r = yhat - _mse_targets(yhat, y)
    return jnp.sum(r * r) / (2 * n)


def mse_grad(yhat, y) -> jax.Array:
    """``d f_MSE / d yhat = (yhat - y) / n``, in the shape of ``yhat``."""
    yhat = _inexact(yhat)
    n = _n_examples(yhat, "mse_grad")
    return (yhat - _mse_targets(yhat, y)) / n


#: ``log softmax(z) = z - logsumexp(z)``, stable for large logits; JAX's own, kept importable from here.
log_softmax = jax.nn.log_softmax


def _ce_targets(z: jax.Array, y) -> jax.Array:
    y = jnp.asarray(y)
    if jnp.issubdtype(y.dtype, jnp.integer) and y.shape == z.shape[:-1]:
        return jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype)
    if y.shape != z.shape:
        raise ValueError(
            f"softmax_cross_entropy: targets of shape {y.shape} (dtype {y.dtype}) do not match logits of "
            f"shape {z.shape}; give one-hot targets in the shape of the logits or integer labels "
            f"of shape {z.shape[:-1]}"
        )
    return y.astype(z.dtype)


def _as_batch(z) -> jax.Array:
    z = _inexact(z)
    if z.ndim == 1:
        return z[None, :]
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"softmax_cross_entropy: logits must be (K,) or (n, K) with n, K >= 1, got {z.shape}")
    return z


def _ce_inputs(logits, y) -> tuple[jax.Array, jax.Array]:
    """Logits as a batch ``(n, K)`` and the targets one-hot in the same shape."""
    z = _as_batch(logits)
    return z, _ce_targets(z, y if jnp.ndim(logits) == 2 else jnp.reshape(jnp.asarray(y), (1,) + jnp.shape(y)))


def softmax_cross_entropy(logits, y) -> jax.Array:
    """``-1/n sum_i sum_k y_ik log softmax(z_i)_k``; logits ``(n, K)`` or ``(K,)``, ``y`` one-hot or labels."""
    z, yy = _ce_inputs(logits, y)
    return -jnp.sum(yy * jax.nn.log_softmax(z, axis=-1)) / z.shape[0]


def softmax_cross_entropy_grad(logits, y) -> jax.Array:
    """``d f_CE / d z = (softmax(z) - y) / n``, in the shape of ``logits``.

    Valid when each target row sums to 1 (one-hot or a probability vector): then the ``sum_k y_k``
    that multiplies ``softmax(z)`` in the exact gradient is 1.
    """
    z, yy = _ce_inputs(logits, y)
    g = (jax.nn.softmax(z, axis=-1) - yy) / z.shape[0]
    return jnp.reshape(g, jnp.shape(logits))


#: name -> (loss(yhat_or_logits, y), loss_grad(yhat_or_logits, y)).
LOSSES: dict[str, tuple[Callable, Callable]] = {
    "mse": (mse, mse_grad),
    "softmax_ce": (softmax_cross_entropy, softmax_cross_entropy_grad),
}


def get_loss(name: str) -> tuple[Callable, Callable]:
    """``(loss, loss_grad)`` for the loss called ``name`` (a key of :data:`LOSSES`)."""
    # The lookup of lecture6.activations.get_activation, over this module's own registry.
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
