"""The networks and backprop rows of the lecture audit are registered in lecture order.

(That every row passes is tests/test_audit.py; that each can fail, tests/test_audit_breaks.py.)
"""

from lecture6 import audit

MODULES = ("lecture6.audit.networks", "lecture6.audit.backprop")


def _mine():
    return [c for c in audit.claims() if c.run.__module__ in MODULES]


def test_rows_are_registered_in_lecture_order():
    claims = _mine()
    assert len(claims) == 19  # 11 network rows, 8 backprop rows
    sections = [c.section for c in claims]
    assert sections.index("Activation functions") < sections.index("Forward propagation") \
        < sections.index("XOR problem") < sections.index("Computing the gradients")
    ids = [c.id for c in claims]
    assert ids.index("networks.heaviside") < ids.index("networks.forward") < ids.index("backprop.algorithm_6_4")
    texts = " ".join(c.text for c in claims)
    for needle in ("Algorithm 6.4", "slide erratum", "POSITIVE", "Jacobian", "f_MSE = 1/8", "nine partials"):
        assert needle in texts
