"""The training rows of the lecture audit run and pass."""

from lecture6.audit import run


def test_training_audit_rows_pass():
    rows = run("trains the 2-2-1 ReLU network to solve XOR") + run("gradient descent never solves XOR")
    assert len(rows) == 2
    for r in rows:
        assert r.passed, (r.claim, r.note)
