"""Activation functions sigma(z) of the lecture, each with its hand-written derivative beside it.

Every ``<name>_grad(z)`` is the elementwise derivative ``d sigma(z_i) / d z_i`` (the diagonal of the
Jacobian ``dh/dz``, which is diagonal because sigma acts elementwise), in the shape of ``z``.

Conventions at the points where the derivative does not exist, stated once:

* **ReLU** ``max{0, z}``: ``relu'(z) = 0`` for ``z <= 0`` and ``1`` for ``z > 0`` -- the slide's
  convention, and the gradient ``jax.nn.relu`` defines. (``jnp.maximum(z, 0)`` differentiates to
  ``0.5`` at ``z = 0``; it is not used here, so hand and autodiff gradients agree everywhere.)
* **Heaviside step** ``H(z) = 1`` for ``z > 0`` and ``0`` for ``z <= 0`` (fires only on strictly positive
  input, like the ReLU's derivative). ``H'(z) = 0`` everywhere: the true derivative away from 0, and at
  0, where H jumps, the finite one-sided derivative (from the left). This is why the step function
  cannot be trained by gradient descent.
* sigmoid, tanh and identity are smooth.

``ACTIVATIONS`` maps each name to ``(sigma, sigma_grad)``; :func:`get_activation` looks one up.
:func:`softmax` is the (non-elementwise) output activation for classification.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _float(z) -> jax.Array:
    """``z`` as an inexact array (integers become the default float type)."""
    z = jnp.asarray(z)
    if not jnp.issubdtype(z.dtype, jnp.inexact):
        z = z.astype(jnp.result_type(float))
    return z


def heaviside(z) -> jax.Array:
    """Heaviside step ``H(z) = 1 if z > 0 else 0`` (Rosenblatt's perceptron), elementwise."""
    z = _float(z)
    return jnp.where(z > 0, jnp.ones_like(z), jnp.zeros_like(z))


def heaviside_grad(z) -> jax.Array:
    """``H'(z) = 0`` elementwise (at the jump z = 0: the finite left derivative)."""
    return jnp.zeros_like(_float(z))


def sigmoid(z) -> jax.Array:
    """Logistic sigmoid ``1 / (1 + exp(-z))``, elementwise (stable for large ``|z|``)."""
    return jax.nn.sigmoid(_float(z))


def sigmoid_grad(z) -> jax.Array:
    """``sigma'(z) = sigma(z) (1 - sigma(z))`` elementwise."""
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh(z) -> jax.Array:
    """Hyperbolic tangent, elementwise."""
    return jnp.tanh(_float(z))


def tanh_grad(z) -> jax.Array:
    """``tanh'(z) = 1 - tanh(z)^2`` elementwise."""
    t = tanh(z)
    return 1.0 - t * t


def relu(z) -> jax.Array:
    """``ReLU(z) = max{0, z}`` elementwise, written so that its autodiff derivative at 0 is 0."""
    z = _float(z)
    # jnp.where differentiates into the branch it selects: at z = 0 that is the constant 0, so
    # jax.grad gives 0 there, as on the slide (jnp.maximum would give 0.5).
    return jnp.where(z > 0, z, jnp.zeros_like(z))


def relu_grad(z) -> jax.Array:
    """``relu'(z) = 0 if z <= 0 else 1`` elementwise (the slide's convention at the kink)."""
    z = _float(z)
    return jnp.where(z > 0, jnp.ones_like(z), jnp.zeros_like(z))


def identity(z) -> jax.Array:
    """``z`` itself: no non-linearity (the linear network of the lecture)."""
    return _float(z)


def identity_grad(z) -> jax.Array:
    """``1`` elementwise."""
    return jnp.ones_like(_float(z))


def softmax(z, axis: int = -1) -> jax.Array:
    """``softmax(z)_k = exp(z_k) / sum_j exp(z_j)`` along ``axis`` (stable: the max is subtracted)."""
    return jax.nn.softmax(_float(z), axis=axis)


#: name -> (sigma, sigma_grad), both elementwise functions of ``z``.
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "heaviside": (heaviside, heaviside_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "identity": (identity, identity_grad),
}


def get_activation(name: str) -> tuple[Callable, Callable]:
    """``(sigma, sigma_grad)`` for the activation called ``name`` (a key of :data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None
