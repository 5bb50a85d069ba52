"""The slides "Jacobian matrices" and "Jacobian versus gradient", and jacobian(f, x, mode)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lecture6 import chain_rule, gradcheck, matrix_derivative
from lecture6 import jacobian as jm
from lecture6.gradcheck import assert_jacobian, check_jacobian
from lecture6.matrix_derivative import vec


def points(rng, shape, k=4, away_from_zero=False):
    pts = rng.uniform(-2, 2, size=(k, *shape))
    if away_from_zero:
        pts = np.sign(pts) * (0.5 + np.abs(pts))
    return [jnp.asarray(p) for p in pts]


# --- Slide "Jacobian matrices" ------------------------------------------------------------------------


def test_f_example_jacobian(rng):
    for x in points(rng, (2,), away_from_zero=True):
        assert_jacobian(jm.f_example, x, jm.f_example_jacobian)


def test_f_example_jacobian_values_as_on_the_slide():
    x = jnp.array([3.0, 2.0])
    np.testing.assert_allclose(jm.f_example_jacobian(x), [[2, 1], [0, np.pi], [-1 / 2, 3 / 4]])


def test_a_wrong_entry_in_the_example_is_caught():
    x = jnp.array([3.0, 2.0])
    res = check_jacobian(jm.f_example, x, lambda x: jm.f_example_jacobian(x).at[2, 1].set(-x[0] / x[1] ** 2))
    assert not res.ok and res.worst == (2, 1)


def test_two_perspectives(rng):
    for xy, w in zip(points(rng, (2,), away_from_zero=True), points(rng, (2,))):
        assert_jacobian(lambda v: jm.f_perspectives(v, w), xy, lambda v: jm.f_perspectives_dx(v, w))
        assert_jacobian(lambda v: jm.f_perspectives(xy, v), w, lambda v: jm.f_perspectives_dw(xy, v))
    # the two perspectives are different Jacobians of the same function
    xy, w = jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0])
    np.testing.assert_allclose(jm.f_perspectives_dx(xy, w), [[6.0, -1.0]])
    np.testing.assert_allclose(jm.f_perspectives_dw(xy, w), [[2.0, 0.5]])


# --- Slide "Jacobian versus gradient" -----------------------------------------------------------------


def test_gradient_is_transposed_jacobian(rng):
    w = jnp.array([0.4, 2.0])
    routes = jax.jit(jm.gradient_as_jacobian_transpose, static_argnums=0)
    for xy in points(rng, (2,), away_from_zero=True):
        g, J = routes(functools.partial(jm.f_perspectives, w=w), xy)
        assert g.shape == (2,) and J.shape == (1, 2)
        np.testing.assert_array_equal(J, g[None, :])
        np.testing.assert_allclose(J, jm.f_perspectives_dx(xy, w), rtol=1e-14)


# --- jacobian(f, x, mode) -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape_in,n_out,expected", [((50,), 2, "rev"), ((2,), 50, "fwd"), ((4, 5), 20, "fwd")])
def test_jacobian_auto_mode_picks_by_shape_and_agrees(shape_in, n_out, expected, rng, monkeypatch):
    A = rng.normal(size=(n_out, int(np.prod(shape_in))))
    x = rng.normal(size=shape_in)

    def f(x):
        return jnp.tanh(A @ vec(x))

    used = []
    for name in ("jacfwd", "jacrev"):
        orig = getattr(jax, name)
        monkeypatch.setattr(jax, name, lambda fn, _o=orig, _n=name: (used.append(_n), _o(fn))[1])
    J = jax.jit(lambda x: jm.jacobian(f, x))(x)  # the mode is chosen from static shapes, under jit too
    assert used == ["jac" + expected]
    by_hand = (1 - np.tanh(A @ x.reshape(-1)) ** 2)[:, None] * A  # d tanh(A v) / dv, in NumPy
    # 1 - tanh^2 near saturation cancels: XLA's tanh and NumPy's differ by an ulp, so an entry may be off
    # by ~2 ulp * |A| ~ 1e-15 absolute (relative 1e-8 where 1 - tanh^2 ~ 1e-7), whatever the Jacobian route.
    np.testing.assert_allclose(J, by_hand, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="mode must be"):
        jm.jacobian(f, x, mode="sideways")


def test_jacobian_forced_modes_agree(rng):
    A, x = rng.normal(size=(3, 4)), rng.normal(size=(2, 2))

    def f(x):
        return jnp.sin(A @ vec(x))

    fwd, rev = jax.jit(lambda x: (jm.jacobian(f, x, mode="fwd"), jm.jacobian(f, x, mode="rev")))(x)
    by_hand = np.cos(A @ x.reshape(-1))[:, None] * A
    np.testing.assert_allclose(fwd, by_hand, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rev, by_hand, rtol=1e-12, atol=1e-15)


# --- every slide where its file name says; the old import paths still work ----------------------------


def test_old_import_paths_are_the_new_objects():
    for name in ("check_jacobian", "assert_jacobian", "check_gradient", "assert_gradient",
                 "finite_difference_jacobian", "JacobianCheck", "TOLERANCES", "FD_TOLERANCES"):
        assert getattr(jm, name) is getattr(gradcheck, name)
    for name in ("vec", "unvec"):
        assert getattr(jm, name) is getattr(matrix_derivative, name)
    for name in ("chain", "chain_cost"):
        assert getattr(jm, name) is getattr(chain_rule, name)
    # the "Jacobian matrices" example used to live in chain_rule
    for name in ("f_example", "f_example_jacobian", "f_perspectives", "f_perspectives_dx", "f_perspectives_dw",
                 "gradient_as_jacobian_transpose"):
        assert getattr(chain_rule, name) is getattr(jm, name)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        chain_rule.nonsense  # noqa: B018
