"""The lecture audit: every row passes (in quick mode), the rows are exactly the registered claims, a
broken check shows up as a FAIL row, and the command line runs, selects and exits as documented.

(That breaking the library under each row makes that row FAIL is tests/test_audit_breaks.py.)
"""

import subprocess
import sys

import pytest

from lecture6 import audit

#: Every claim the audit checks, by id, in lecture order. A row added or removed must be added here
#: (and given a breaking test in tests/test_audit_breaks.py).
EXPECTED_IDS = [
    "jacobians.f_example", "jacobians.layout", "jacobians.perspective_x", "jacobians.perspective_w",
    "jacobians.chain_example", "jacobians.substitution", "jacobians.wrong_order", "jacobians.three_chain",
    "jacobians.chain_cost", "jacobians.grad_vs_jac", "jacobians.vectorizing_erratum", "jacobians.vec",
    "jacobians.dz_dvecW", "jacobians.grad_W",
    "ppca.pca_directions", "ppca.marginal", "ppca.mle_b", "ppca.mle_W", "ppca.weights", "ppca.sampling",
    "ppca.posterior", "ppca.normalizer", "ppca.gaussian_mle", "ppca.factorization",
    "networks.heaviside", "networks.sigmoid", "networks.tanh", "networks.relu", "networks.relu_unattenuated",
    "networks.forward", "networks.collapse", "networks.xor_linear", "training.linear_never_solves",
    "networks.xor_hidden", "networks.xor_solution", "networks.xor_row",
    "backprop.xor_partials", "backprop.xor_mse_partials", "training.gd_solves_xor",
    "backprop.algorithm_6_4", "backprop.intermediates", "backprop.ce_closed_forms", "backprop.ce_erratum",
    "backprop.jacobian_chain", "backprop.matrix_form",
]

SECTIONS = {
    "Jacobian matrices", "Chain rule of multivariate calculus", "Jacobian versus gradient", "Vectorizing a matrix",
    "Matrix derivative of a vector-valued function", "Principal component analysis (PCA)",
    "MLE for a multivariate Gaussian distribution", "Activation functions", "Forward propagation",
    "Crucial role of non-linearity", "XOR problem", "Gradient descent: XOR problem", "Computing the gradients",
    "Gradient descent (any 3-layer NN)",
}


@pytest.fixture(scope="module")
def quick_rows():
    return audit.run(quick=True)


def test_every_claim_passes_in_quick_mode(quick_rows):
    failed = [f"{r.id} ({r.section}: {r.claim}) -> {r.note}" for r in quick_rows if not r.passed]
    assert not failed, "\n".join(failed)


def test_the_rows_are_exactly_the_expected_claims_in_lecture_order(quick_rows):
    assert [r.id for r in quick_rows] == EXPECTED_IDS
    assert {r.section for r in quick_rows} == SECTIONS
    # rows of one slide title are printed together: each section is one contiguous run of rows
    order = [r.section for r in quick_rows]
    runs = [s for i, s in enumerate(order) if i == 0 or order[i - 1] != s]
    assert len(runs) == len(set(runs)), runs


def test_claim_ids_are_unique_and_name_their_function():
    claims = audit.claims()
    assert len({c.id for c in claims}) == len(claims)
    for c in claims:
        assert c.id == audit.claim_id(c.run) and c.id.endswith(c.run.__name__.lstrip("_"))


def test_quick_mode_is_set_for_the_claim_being_run_only():
    seen = []

    def check():
        seen.append((audit.is_quick(), audit.sized("full", "quick")))
        return audit.Check(None, True)

    c = audit.Claim("S", "a claim", "a method", check, (0, 0), "test.check")
    audit.run_claim(c, quick=True)
    audit.run_claim(c)
    assert seen == [(True, "quick"), (False, "full")]
    assert audit.sized("full", "quick") == "full"  # reset after the run


def test_a_check_that_raises_is_a_fail_row_not_a_crash():
    def broken():
        raise ZeroDivisionError("boom")

    row = audit.run_claim(audit.Claim("S", "a claim", "a method", broken, (0, 0), "test.broken"), quick=True)
    assert not row.passed and "ZeroDivisionError: boom" in row.note
    text = audit.format_rows([row])
    assert "FAIL" in text and "0 passed, 1 failed" in text and "[test.broken]" in text


def test_main_exits_one_on_a_failing_row_and_two_when_nothing_matches(monkeypatch, capsys):
    rows = [audit.Claim("S", "passes", "m", lambda: audit.Check(0.0, True), (0, 0), "test.good"),
            audit.Claim("S", "fails", "m", lambda: audit.Check(1.0, False, "off by 1"), (0, 1), "test.bad")]
    monkeypatch.setattr(audit, "claims", lambda: rows)
    assert audit.main(["--quick"]) == 1
    out = capsys.readouterr().out
    assert "quick mode" in out and "1 passed, 1 failed" in out and "off by 1" in out
    assert audit.main(["-k", "test.good", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| section | claim |") and "| PASS |" in out and "fails" not in out
    assert audit.main(["-k", "no such claim"]) == 2
    assert "no claim matches 'no such claim'" in capsys.readouterr().err


def test_audit_cli_runs_quick_rows_selected_by_id():
    # One row that compiles nothing: the subprocess costs its start-up, not the audit.
    out = subprocess.run([sys.executable, "-m", "lecture6.audit", "--quick", "-k", "networks.xor_linear"],
                         capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[networks.xor_linear]" in out.stdout and "== Crucial role of non-linearity ==" in out.stdout
    assert out.stdout.count("  PASS  ") == 1 and "  FAIL  " not in out.stdout
    assert "(quick mode" in out.stdout and "1 passed, 0 failed" in out.stdout
