"""Feed-forward networks (multi-layer perceptrons) as pure functions of a params pytree.

Params are a list of layers, layer ``k`` (1-based on the slides) a dict ``{"W": (n_k, n_{k-1}),
"b": (n_k,)}`` -- the slide's column-vector convention ``z^(k) = W^(k) h^(k-1) + b^(k)``, with
``h^(0) = x``. Hidden layers apply the activation ``h^(k) = sigma(z^(k))``; the last layer applies the
output activation (``"identity"`` for regression and XOR with f_MSE, ``"softmax"`` for class
probabilities; for softmax cross-entropy training keep the output ``"identity"`` and give the
*logits* to :func:`lecture6.losses.softmax_cross_entropy`).

Forward propagation (:func:`forward`) returns ``yhat`` and the slide's computational graph: every
pre-activation ``z^(k)`` and every hidden value ``h^(k)``. A batch is ``(n, d)`` with one example per
row, so a layer computes ``Z = H W^T + b`` (the row-wise form of ``z = W h + b``).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lecture6.activations import ACTIVATIONS, get_activation, softmax

INITS = ("he", "glorot", "normal")
OUTPUTS = ("identity", "softmax") + tuple(k for k in ACTIVATIONS if k != "identity")


def _check_sizes(sizes) -> list[int]:
    try:
        out = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise ValueError(f"sizes must be a sequence of layer widths, got {sizes!r}") from None
    if len(out) < 2:
        raise ValueError(f"sizes needs at least an input and an output width, got {list(sizes)}")
    if any(s < 1 or s != float(t) for s, t in zip(out, sizes)):
        raise ValueError(f"layer widths must be positive integers, got {list(sizes)}")
    return out


def init_std(init: str, n_in: int, n_out: int, scale: float = 1.0) -> float:
    """Standard deviation of a layer's initial weights: He ``sqrt(2 / n_in)``, Glorot
    ``sqrt(2 / (n_in + n_out))``, each times ``scale``; ``"normal"``: ``scale`` itself."""
    if init == "he":
        return scale * math.sqrt(2.0 / n_in)
    if init == "glorot":
        return scale * math.sqrt(2.0 / (n_in + n_out))
    return scale


def init_mlp(
    key,
    sizes: Sequence[int],
    *,
    init: str = "he",
    scale: float = 1.0,
    bias_init: float = 0.0,
    dtype=None,
) -> list[dict]:
    """Random params for a network with layer widths ``sizes = [d, n_1, ..., n_out]``.

    Args:
      key: a ``jax.random.key``; layer ``k`` uses the ``k``-th key of ``split(key, len(sizes) - 1)``.
      sizes: widths from input to output; ``len(sizes) - 1`` layers.
      init: ``"he"`` -- ``W ~ N(0, scale^2 * 2 / n_in)`` (for ReLU); ``"glorot"`` --
        ``W ~ N(0, scale^2 * 2 / (n_in + n_out))`` (for tanh/sigmoid); ``"normal"`` --
        ``W ~ N(0, scale^2)``, ``scale`` being the standard deviation itself.
      scale: multiplies the standard deviation (see ``init``).
      bias_init: every bias entry starts at this value.
      dtype: float dtype of the params; default float64 when x64 is on, else float32.

    Returns:
      ``[{"W": (n_1, d), "b": (n_1,)}, ..., {"W": (n_out, n_{l-1}), "b": (n_out,)}]``.
    """
    sizes = _check_sizes(sizes)
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {list(INITS)}")
    try:
        scale, bias_init = float(scale), float(bias_init)
    except TypeError:
        raise ValueError(f"scale and bias_init must be numbers, got {scale!r} and {bias_init!r}") from None
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    if not math.isfinite(bias_init):
        raise ValueError(f"bias_init must be finite, got {bias_init!r}")
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a float type, got {dtype}")
    return _init(key, tuple(sizes), init, scale, np.asarray(bias_init, dtype=dtype), dtype)


def initializer(init: str, scale: float = 1.0):
    """The ``jax.nn.initializers`` draw of a weight matrix ``W (n_out, n_in)`` for ``init`` (see :func:`init_std`)."""
    fans = {"he": (2.0, "fan_in"), "glorot": (1.0, "fan_avg")}
    if init in fans:
        factor, mode = fans[init]
        return jax.nn.initializers.variance_scaling(factor * scale**2, mode, "normal", in_axis=-1, out_axis=-2)
    return jax.nn.initializers.normal(stddev=scale)


@functools.partial(jax.jit, static_argnames=("sizes", "init", "scale", "dtype"))
def _init(key, sizes, init, scale, bias_init, dtype):
    # One compiled program per architecture: run eagerly, every random op would compile on its own.
    # bias_init is an argument (a dtype scalar), not compiled in: networks differing only in it share.
    keys = jax.random.split(key, len(sizes) - 1)
    draw = initializer(init, scale)
    return [{"W": draw(keys[k], (n_out, n_in), dtype), "b": jnp.full((n_out,), bias_init, dtype=dtype)}
            for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes))]


def check_params(params) -> list[tuple[int, int]]:
    """Validate the params list; return ``[(n_out, n_in), ...]`` per layer. Raises ``ValueError``."""
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise ValueError(f"params must be a non-empty list of layers {{'W', 'b'}}, got {type(params).__name__}")
    shapes = []
    for k, layer in enumerate(params, start=1):
        if not isinstance(layer, dict) or set(layer) != {"W", "b"}:
            got = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
            raise ValueError(f"layer {k} must be a dict with keys 'W' and 'b', got {got}")
        W, b = jnp.shape(layer["W"]), jnp.shape(layer["b"])
        if len(W) != 2 or b != (W[0],):
            raise ValueError(f"layer {k}: W must be (n_out, n_in) and b (n_out,), got W {W} and b {b}")
        if shapes and W[1] != shapes[-1][0]:
            raise ValueError(
                f"layer {k}: W^({k}) has {W[1]} columns but layer {k - 1} has {shapes[-1][0]} outputs"
            )
        shapes.append((W[0], W[1]))
    return shapes


def _output_fn(output: str):
    if output == "softmax":
        return softmax
    if output in ACTIVATIONS:
        return ACTIVATIONS[output][0]
    raise ValueError(f"unknown output activation {output!r}; expected one of {list(OUTPUTS)}")


def forward(params, X, *, activation: str = "relu", output: str = "identity"):
    """Forward propagation: ``yhat`` and every intermediate value of the computational graph.

    Args:
      params: list of layers ``{"W": (n_out, n_in), "b": (n_out,)}``.
      X: one example ``(d,)`` or a batch ``(n, d)`` (rows are examples).
      activation: hidden-layer activation, a key of :data:`lecture6.activations.ACTIVATIONS` (or an
        elementwise function of ``z``).
      output: output activation, ``"identity"`` (default), ``"softmax"`` or an elementwise activation.

    Returns:
      ``(yhat, cache)`` with ``yhat`` ``(n, n_out)`` (``(n_out,)`` for one example) and
      ``cache = {"z": [z1, ..., zl], "h": [x, h1, ..., h_{l-1}]}``: ``z[k-1]`` is the pre-activation
      ``z^(k)`` ``(n, n_k)`` of layer ``k`` and ``h[k]`` the hidden value ``h^(k) = sigma(z^(k))`` feeding
      layer ``k + 1`` (``h[0]`` is the input). For one example every entry is 1-D.
    """
    shapes = check_params(params)
    sigma = activation if callable(activation) else get_activation(activation)[0]
    out_fn = _output_fn(output)
    X = jnp.asarray(X)
    if X.ndim not in (1, 2) or X.shape[-1] != shapes[0][1]:
        raise ValueError(
            f"X must be (d,) or (n, d) with d = {shapes[0][1]} (the columns of W^(1)), got shape {X.shape}"
        )
    single = X.ndim == 1
    H = X[None, :] if single else X
    H = H.astype(jnp.result_type(H.dtype, params[0]["W"].dtype, float))
    zs, hs = [], [H]
    for k, layer in enumerate(params):
        Z = H @ layer["W"].T + layer["b"][None, :]
        zs.append(Z)
        if k < len(params) - 1:
            H = sigma(Z)
            hs.append(H)
    yhat = out_fn(zs[-1])
    if single:
        yhat = yhat[0]
        zs = [z[0] for z in zs]
        hs = [h[0] for h in hs]
    return yhat, {"z": zs, "h": hs}


def predict(params, X, *, activation: str = "relu", output: str = "identity") -> jax.Array:
    """``yhat`` only: :func:`forward` without the cache."""
    return forward(params, X, activation=activation, output=output)[0]


def collapse_linear(params) -> tuple[jax.Array, jax.Array]:
    """The single affine map ``x -> W x + b`` a network *without* non-linearity computes.

    The slide's ``g(x) = W^(2)(W^(1) x + b^(1)) + b^(2) = (W^(2) W^(1)) x + (W^(2) b^(1) + b^(2))``,
    folded over any number of layers: ``W = W^(l) ... W^(1)`` and ``b`` accumulated the same way.
    Returns ``(W (n_out, d), b (n_out,))``; ``forward(params, X, activation="identity")`` equals
    ``X @ W.T + b``.
    """
    check_params(params)
    W, b = params[0]["W"], params[0]["b"]
    for layer in params[1:]:
        W = layer["W"] @ W
        b = layer["W"] @ b + layer["b"]
    return W, b
