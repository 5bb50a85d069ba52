"""The lecture audit: every row passes (in quick mode), the rows are exactly the registered claims, a
broken check shows up as a FAIL row, and the command line runs, selects and exits as documented.

(That breaking the library under each row makes that row FAIL is tests/test_audit_breaks.py.)
"""

import os

import launches
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
    "backprop.jacobian_chain", "mnist.algorithm_6_4", "backprop.matrix_form",
]

SECTIONS = {
    "Jacobian matrices", "Chain rule of multivariate calculus", "Jacobian versus gradient", "Vectorizing a matrix",
    "Matrix derivative of a vector-valued function", "Principal component analysis (PCA)",
    "MLE for a multivariate Gaussian distribution", "Activation functions", "Forward propagation",
    "Crucial role of non-linearity", "XOR problem", "Gradient descent: XOR problem", "Computing the gradients",
    "Gradient descent (any 3-layer NN)",
}


# The whole quick audit through its command line, started when the tests are collected (tests/launches.py).
QUICK = launches.launch("audit_quick", lambda out: launches.python(
    "-m", "lecture6.audit", "--quick", "--json", f"{out}/rows.json"))


@pytest.fixture(scope="module")
def quick_rows():
    p = QUICK.result()
    assert os.path.exists(f"{QUICK.out}/rows.json"), p.stdout + p.stderr
    return audit.read_rows(f"{QUICK.out}/rows.json")


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


def test_audit_cli_prints_every_row_and_exits_zero(quick_rows):
    p = QUICK.result()
    assert p.returncode == 0, p.stdout + p.stderr
    printed = {line.rsplit("[", 1)[1].rstrip("]"): line.split()[0] for line in p.stdout.splitlines()
               if line.endswith("]") and line.lstrip().startswith(("PASS", "FAIL"))}
    assert printed == {r.id: "PASS" for r in quick_rows}
    assert "== Crucial role of non-linearity ==" in p.stdout and "  FAIL  " not in p.stdout
    assert "(quick mode" in p.stdout and f"{len(EXPECTED_IDS)} passed, 0 failed" in p.stdout


def test_rows_written_as_json_read_back_equal(tmp_path):
    rows = [audit.Row("S", "s", "a claim", "a method", None, True, "", 0.5),
            audit.Row("T", "t", "another", "m", 1e-3, False, "off", 0.25)]
    audit.write_rows(rows, str(tmp_path / "rows.json"))
    assert audit.read_rows(str(tmp_path / "rows.json")) == rows and os.listdir(tmp_path) == ["rows.json"]
