"""Many small networks at once, written as the slide writes one: every weight a vector over the runs.

The slide's 2-2-1 network is a handful of scalars::

    z1 = w1 x1 + w2 x2 + b1        h1 = relu(z1)
    z2 = w3 x1 + w4 x2 + b2        h2 = relu(z2)
    yhat = w5 h1 + w6 h2 + b3

Here each of ``w1 ... b3`` is a vector over the ``R`` runs (seeds x learning rates) -- a layer is
``{"W": (n_out, n_in, R), "b": (n_out, R)}``, the runs axis last and contiguous in memory -- and the same
formulas train every run at once, elementwise over ``R``. ``vmap``-ing the library's matrix form instead
multiplies ``R`` separate tiny matrices (runs axis first), several times slower for networks this
small (``benchmarks/bench_train.py``; :func:`lecture6.runs.choose_layout` picks this layout by the
thresholds measured there). It covers what XOR needs -- f_MSE, full batch, ``jax.grad`` -- and returns
exactly what :func:`lecture6.runs.make_train_runs` returns for the vmap layout.

The examples are constants of the program (Python floats), so the first layer's products with inputs 0
and 1 are folded when it is traced (exactly: ``w * 1 = w``; a ``w * 0`` term adds only the sign of a zero).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from lecture6.activations import get_activation
from lecture6.train import Program, TrainState, all_finite, check_config, make_optimizer, prepare_data, train_result


def to_seeds_last(params):
    """MLP params with a leading run axis (``W (R, o, i)``, ``b (R, o)``) -> runs last: ``W (o, i, R)``."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), params)


def from_seeds_last(params):
    """Inverse of :func:`to_seeds_last`."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), params)


def _sum(terms):
    """``terms[0] + terms[1] + ...``, left to right."""
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def first_layer(W, X, b):
    """``z_ro = sum_i W_oi x_ri + b_o`` for every example ``r`` and run: ``W (o, i, R)``, ``b (o, R)``,
    ``X`` a list of examples, each a list of Python floats (products with 0 or 1 folded) -> ``(n, o, R)``."""
    return jnp.stack([_sum([W[:, i] if x_i == 1 else W[:, i] * x_i for i, x_i in enumerate(x) if x_i != 0] + [b])
                      for x in X])


def forward(params, X, sigma: Callable):
    """Every example ``X[r]`` through every run's network: ``yhat (n, n_out, R)``.

    ``z^(k) = W^(k) h^(k-1) + b^(k)``, ``h^(k) = sigma(z^(k))``, every entry a vector over the runs; the
    output layer is linear.
    """
    z = first_layer(params[0]["W"], X, params[0]["b"])
    for la in params[1:]:
        z = jnp.sum(la["W"][None] * sigma(z)[:, None], axis=2) + la["b"][None]
    return z


def make_program(config, data, *, sigma: Callable | None = None) -> Program:
    """The training run of every network at once, as the pieces of :class:`lecture6.train.Program`.

    Unlike :func:`lecture6.train.make_program` the pieces take and return **all** runs: ``init(params,
    order_key, lr)`` with MLP params of leading axis ``R`` and ``lr (R,)``. ``sigma`` replaces the
    activation: a function of a layer's pre-activations ``z (units, R)``. Needs ``config.loss == "mse"``,
    autodiff gradients and a full batch.
    """
    config = check_config(config)
    X, Y = prepare_data(data, config)
    if config.loss != "mse" or config.grad != "autodiff" or config.batch_size < X.shape[0]:
        raise ValueError("the seeds-last layout trains f_MSE, full batch, with autodiff gradients; got "
                         f"loss {config.loss!r}, grad {config.grad!r}, batch_size {config.batch_size} of {len(X)}")
    sizes = (X.shape[1],) + (config.width,) * config.depth + (Y.shape[1],)
    sigma = sigma or get_activation(config.activation)[0]
    optimizer = make_optimizer(config)
    X_rows = X.tolist()  # shared by every run: constants of the program

    def scores(params):
        """f_MSE ``1/(2n) sum_r ||yhat_r - y_r||^2`` ``(R,)`` and the fraction of outputs within 0.5 of
        their targets ``(R,)``."""
        e = forward(params, X_rows, sigma) - Y[:, :, None]
        return jnp.sum(e * e, axis=(0, 1)) / (2 * Y.shape[0]), jnp.mean((jnp.abs(e) < 0.5).astype(X.dtype), axis=(0, 1))

    def total_loss(params):
        loss, acc = scores(params)
        return jnp.sum(loss), (loss, acc)  # the runs are independent: d(sum)/dp is every run's own gradient

    def init(params, order_key, lr):
        params = to_seeds_last(params)
        opt_state = optimizer.init(params)
        opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, X.dtype)  # (R,): each run its own rate
        return TrainState(params, opt_state, order_key, jnp.ones(lr.shape, bool))

    def step(state, _):
        """p <- p - lr * df/dp for every run at once (full batch); the loss and accuracy before it."""
        (_, (loss, acc)), grads = jax.value_and_grad(total_loss, has_aux=True)(state.params)
        with jax.numpy_rank_promotion("allow"):  # the rates (R,) multiply every leaf along its runs axis
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state._replace(params=params, opt_state=opt_state, finite=state.finite & jnp.isfinite(loss)), (loss,
                                                                                                               acc)

    def epochs(state, j):
        """``log_every`` epochs (one full-batch step each); the last one's loss and accuracy."""
        state, (loss, acc) = jax.lax.scan(step, state, None, length=config.log_every)
        return state, (loss[-1], acc[-1])

    def finish(state, loss, acc, seed, lr):
        final = scores(state.params)
        params = from_seeds_last(state.params)
        finite = state.finite & jax.vmap(all_finite)(params) & jnp.isfinite(final[0])
        return train_result(params, finite, (loss, acc), final, seed, lr, config.log_every)

    return Program(init, epochs, finish, sizes, config.epochs // config.log_every, config.epochs, False)
