"""Vectorizing a matrix: vec/unvec, the slide's erratum, and grad_W J = p x^T."""

import jax.numpy as jnp
import numpy as np
import pytest

from lecture6 import matrix_derivative as md
from lecture6.gradcheck import assert_jacobian, check_jacobian
from lecture6.matrix_derivative import unvec, vec


def test_vec_is_row_major_and_unvec_inverts():
    W = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(vec(W), [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(unvec(vec(W), (2, 3)), W)


def test_unvec_rejects_wrong_size_and_rank():
    with pytest.raises(ValueError, match="length 5 cannot fill shape"):
        unvec(jnp.zeros(5), (2, 3))
    with pytest.raises(ValueError, match="1-D"):
        unvec(jnp.zeros((2, 3)), (6,))


def test_corrected_2x2_vectorized_jacobian_passes(rng):
    for _ in range(4):
        x, W = rng.normal(size=2), rng.normal(size=(2, 2))
        assert_jacobian(lambda M: md.linear_map(M, x), W, lambda M: md.dz_dvecW_2x2(x))


def test_slide_erratum_second_row_x3_x4_fails_the_check(rng):
    """The slide prints d f / d vec[W] = [[x1, x2, 0, 0], [0, 0, x3, x4]]; row 2 must be [0, 0, x1, x2]."""
    x, W = np.array([0.7, -1.2]), rng.normal(size=(2, 2))
    for x3, x4 in [(0.0, 0.0), (1.0, 1.0), tuple(rng.normal(size=2))]:
        res = check_jacobian(lambda M: md.linear_map(M, x), W, lambda M: md.slide_dz_dvecW_2x2(x, x3, x4))
        assert not res.ok
        assert res.worst[0] == 1 and res.worst[1] in (2, 3)  # the wrong entries are in row 2
    # the slide's matrix is right only if x3 = x1 and x4 = x2, i.e. when it *is* the corrected one
    assert check_jacobian(lambda M: md.linear_map(M, x), W,
                          lambda M: md.slide_dz_dvecW_2x2(x, x[0], x[1])).ok


@pytest.mark.parametrize("n,m", [(1, 1), (1, 4), (3, 2), (5, 3)])
def test_dz_dvecW_is_block_diagonal_with_x_transposed(n, m, rng):
    x, W = rng.normal(size=m), rng.normal(size=(n, m))
    res = assert_jacobian(lambda M: md.linear_map(M, x), W, lambda M: md.dz_dvecW(x, n))
    J = res.jacobians["hand"]
    assert J.shape == (n, n * m)
    for i in range(n):
        np.testing.assert_array_equal(J[i, i * m:(i + 1) * m], x)
    assert res.jacobians["fd"].shape == (n, n * m)


@pytest.mark.parametrize("n,m", [(2, 2), (3, 5)])
def test_grad_W_is_p_x_transposed(n, m, rng):
    t = rng.normal(size=n)

    def J(z):
        return 0.5 * jnp.sum((jnp.tanh(z) - t) ** 2)

    def p_of(z):  # (dJ/dz)^T, by hand
        return (jnp.tanh(z) - t) * (1 - jnp.tanh(z) ** 2)

    x, W = rng.normal(size=m), rng.normal(size=(n, m))
    # both routes against jacfwd, jacrev and finite differences of J(W x) with respect to W
    assert_jacobian(lambda M: J(M @ x), W, lambda M: md.grad_W(p_of(M @ x), x))
    assert_jacobian(lambda M: J(M @ x), W, lambda M: md.grad_W_via_chain(p_of(M @ x), x))
    # x p^T (the transposed outer product): lecture6's checker calls it wrong, for a square W too
    def transposed(M):
        return jnp.outer(x, p_of(M @ x))

    if n != m:  # refused by its shape, which the error names
        with pytest.raises(ValueError, match=rf"hand Jacobian has shape \({m}, {n}\)"):
            check_jacobian(lambda M: J(M @ x), W, transposed)
    else:
        wrong = check_jacobian(lambda M: J(M @ x), W, transposed)
        assert not wrong.ok and wrong.hand_matches_autodiff is False
