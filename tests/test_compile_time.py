"""compile_time.measure counts what JAX spends making new programs, and nothing else."""

import threading

import jax
import jax.numpy as jnp
import numpy as np

from lecture6 import compile_time


def test_a_new_program_counts_once_and_a_compiled_one_not_at_all():
    f = jax.jit(lambda x: jnp.sin(x) * 3.25 + jnp.cos(x[::-1]))  # a program no other test builds
    x = np.linspace(0.0, 1.0, 13 * 7 * 3).reshape(13, 7, 3)
    with compile_time.measure() as first:
        jax.block_until_ready(f(x))
    with compile_time.measure() as second:
        jax.block_until_ready(f(x))
    assert first.seconds > 0 and first.programs == 1
    assert second.seconds == 0 and second.programs == 0
    with compile_time.measure() as third:  # a new shape is a new program
        jax.block_until_ready(f(x[:5]))
    assert third.programs == 1


def test_blocks_nest_and_other_threads_are_not_counted():
    g = jax.jit(lambda x: jnp.tanh(x) @ x.T)
    h = jax.jit(lambda x: jnp.exp(-x) @ x.T)
    x = np.ones((11, 5))
    with compile_time.measure() as outer:
        thread = threading.Thread(target=lambda: jax.block_until_ready(h(x)))
        thread.start()
        thread.join()
        with compile_time.measure() as inner:
            jax.block_until_ready(g(x))
    assert inner.programs == 1 and outer.programs == 1  # h compiled in another thread
    assert outer.seconds >= inner.seconds > 0
