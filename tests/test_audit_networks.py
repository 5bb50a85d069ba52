"""The networks and backprop rows of the lecture audit are registered in lecture order.

(That every row passes is tests/test_audit.py::test_every_claim_passes.)
"""

from lecture6 import audit

MODULES = ("lecture6.audit.networks", "lecture6.audit.backprop")


def _mine():
    return [c for c in audit.claims() if c.run.__module__ in MODULES]


def test_rows_are_registered_in_lecture_order():
    claims = _mine()
    assert len(claims) >= 19
    sections = [c.section for c in claims]
    assert sections.index("Activation functions") < sections.index("Computing the gradients")
    texts = " ".join(c.text for c in claims)
    for needle in ("Algorithm 6.4", "slide erratum", "POSITIVE", "Jacobian", "f_MSE = 1/8", "nine partials"):
        assert needle in texts
