"""The lecture audit: every row passes, and a broken check shows up as a FAIL row."""

import subprocess
import sys

from lecture6 import audit


def test_every_claim_passes():
    rows = audit.run()
    failed = [f"{r.section}: {r.claim} -> {r.note}" for r in rows if not r.passed]
    assert not failed, "\n".join(failed)
    assert len(rows) >= 14
    sections = {r.section for r in rows}
    assert {"Jacobian matrices", "Chain rule of multivariate calculus", "Vectorizing a matrix",
            "Principal component analysis (PCA)", "MLE for a multivariate Gaussian distribution",
            "Activation functions", "XOR problem", "Computing the gradients",
            "Gradient descent: XOR problem"} <= sections
    # rows of one slide title are printed together
    order = [r.section for r in rows]
    assert all(order.index(s) + order.count(s) - 1 == len(order) - 1 - order[::-1].index(s) for s in sections)


def test_a_check_that_raises_is_a_fail_row_not_a_crash():
    def broken():
        raise ZeroDivisionError("boom")

    row = audit.run_claim(audit.Claim("S", "a claim", "a method", broken, (0, 0)))
    assert not row.passed and "ZeroDivisionError: boom" in row.note
    text = audit.format_rows([row])
    assert "FAIL" in text and "0 passed, 1 failed" in text


def test_audit_cli_exits_zero_and_prints_rows():
    out = subprocess.run([sys.executable, "-m", "lecture6.audit", "-k", "chain rule"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS" in out.stdout and "FAIL" not in out.stdout.replace("0 failed", "")
    bad = subprocess.run([sys.executable, "-m", "lecture6.audit", "-k", "no such claim"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "no claim matches" in bad.stderr
