"""PPCA fit and log-likelihood: lecture6.ppca against scikit-learn's fastest PCA solver, same run.

    python benchmarks/bench_ppca.py           # n = 100,000 train + 20,000 held out, d = 784, q = 50
    python benchmarks/bench_ppca.py --small   # n = 20,000 + 4,000, d = 196, q = 20 (a quick check)

Both sides get the same float64 NumPy arrays. Timed, median of ``--repeats`` alternating runs:
* fit: ``ppca.moments`` + ``ppca.fit_closed_form_from_moments`` (what ``fit_closed_form`` does) vs
  ``PCA(q, svd_solver="covariance_eigh").fit``;
* fit + average log-likelihood of the training and the held-out set: ours takes the training average
  from the moments the fit already computed (``log_likelihood_from_moments``, O(d^2 q)) and makes one
  pass over the held-out set (``log_likelihood(...).mean()``); scikit-learn calls ``PCA.score`` twice.
Checked, not timed: our log-likelihood evaluated at scikit-learn's fitted parameters equals
``PCA.score`` (to 1e-10 relative), the moment route equals a full pass over the training data (to
1e-10 relative), and our 1/n MLE scores at least as high on the training data as
scikit-learn's 1/(n-1) fit. Prints the times and the ratios sklearn / ours (> 1: we are faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from lecture6 import ppca  # noqa: E402  (after enabling x64, before any array is made)


def make_data(rng, n, n_test, d, q, sigma2=0.1):
    W = rng.standard_normal((d, q)) * np.linspace(3.0, 0.5, q)[None, :]
    b = rng.standard_normal(d)

    def draw(m):
        return rng.standard_normal((m, q)) @ W.T + b[None, :] + np.sqrt(sigma2) * rng.standard_normal((m, d))

    return draw(n), draw(n_test)


def ours(X_train, X_test, q):
    """One pass over the training data for its moments; the fit and the average training
    log-likelihood both follow from them (O(d^2 q)); one pass over the held-out data."""
    t0 = time.perf_counter()
    mean, S = ppca.moments(X_train)
    model = jax.block_until_ready(ppca.fit_closed_form_from_moments(mean, S, q))
    t_fit = time.perf_counter() - t0
    ll_train = float(ppca.log_likelihood_from_moments(model, jnp.asarray(mean), jnp.asarray(S)))
    ll_test = float(jnp.mean(ppca.log_likelihood(model, X_test)))
    return t_fit, time.perf_counter() - t0, ll_train, ll_test, model


def sklearn(X_train, X_test, q):
    from sklearn.decomposition import PCA

    t0 = time.perf_counter()
    pca = PCA(n_components=q, svd_solver="covariance_eigh").fit(X_train)
    t_fit = time.perf_counter() - t0
    ll_train, ll_test = pca.score(X_train), pca.score(X_test)
    return t_fit, time.perf_counter() - t0, ll_train, ll_test, pca


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="n=20,000, d=196, q=20")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, n_test, d, q = (20_000, 4_000, 196, 20) if args.small else (100_000, 20_000, 784, 50)
    rng = np.random.default_rng(0)
    X_train, X_test = make_data(rng, n, n_test, d, q)
    print(f"n_train={n} n_test={n_test} d={d} q={q} float64; {args.repeats} repeats, median times")

    # Warm-up: compile the jitted likelihood and load scikit-learn before timing.
    ours(X_train[:1000], X_test[:100], q)
    sklearn(X_train[:1000], X_test[:100], q)

    runs = {"ours": [], "sklearn": []}
    for _ in range(args.repeats):
        runs["ours"].append(ours(X_train, X_test, q))
        runs["sklearn"].append(sklearn(X_train, X_test, q))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
           for k, v in runs.items()}
    _, _, ll_tr, ll_te, _ = runs["ours"][-1]
    _, _, sk_tr, sk_te, pca = runs["sklearn"][-1]

    # Same parameters, two implementations: our likelihood at scikit-learn's fit.
    W = pca.components_.T * np.sqrt(pca.explained_variance_ - pca.noise_variance_)[None, :]
    at_sk = ppca.PPCA(jnp.asarray(W), jnp.asarray(pca.mean_), jnp.asarray(pca.noise_variance_))
    rel = max(abs(float(jnp.mean(ppca.log_likelihood(at_sk, X))) - s) / abs(s)
              for X, s in ((X_train, sk_tr), (X_test, sk_te)))
    # The moment route to the training log-likelihood against a full pass over the data.
    model = runs["ours"][-1][4]
    rel_moments = abs(float(jnp.mean(ppca.log_likelihood(model, X_train))) - ll_tr) / abs(ll_tr)

    print(f"{'':28}{'ours':>10}{'sklearn':>10}{'sklearn/ours':>14}")
    print(f"{'fit (s)':28}{med['ours'][0]:10.3f}{med['sklearn'][0]:10.3f}"
          f"{med['sklearn'][0] / med['ours'][0]:13.2f}x")
    print(f"{'fit + 2 log-likelihoods (s)':28}{med['ours'][1]:10.3f}{med['sklearn'][1]:10.3f}"
          f"{med['sklearn'][1] / med['ours'][1]:13.2f}x")
    print(f"avg train log-likelihood: ours (1/n MLE) {ll_tr:.10f}, sklearn (1/(n-1)) {sk_tr:.10f}; "
          f"ours >= sklearn: {ll_tr >= sk_tr}")
    print(f"avg test log-likelihood:  ours {ll_te:.10f}, sklearn {sk_te:.10f}")
    print(f"our log-likelihood at sklearn's parameters vs PCA.score: max relative difference {rel:.1e} "
          f"({'OK' if rel < 1e-10 else 'ABOVE'} 1e-10)")
    print(f"our training log-likelihood from moments vs a full pass over X_train: relative difference "
          f"{rel_moments:.1e} ({'OK' if rel_moments < 1e-10 else 'ABOVE'} 1e-10)")


if __name__ == "__main__":
    main()
