"""A built-in payment gateway for the demo and the tests. It moves no money.

Outcomes follow the customer's payment method, so a test or a demo customer
decides what happens without any state kept here:

* no method, or ``ok``: every charge succeeds;
* ``declined``: every charge is declined (``card_declined``);
* ``recover_after_N``: the first N attempts of an invoice are declined
  (``insufficient_funds``), later ones succeed.

References are derived from the idempotency key, so retrying a request with
the same key returns the same reference, like a real gateway would.
"""

from __future__ import annotations

import hashlib
import re

from connectors.base import ChargeRequest, ChargeResult, RefundRequest, RefundResult

_RECOVER = re.compile(r"recover_after_(\d+)")


def _reference(prefix: str, key: str) -> str:
    return f"{prefix}_{hashlib.sha256(key.encode()).hexdigest()[:20]}"


class TestPayGateway:
    """Implements :class:`connectors.base.PaymentGateway`."""

    __test__ = False  # not a pytest test class, despite the name
    name = "testpay"

    def charge(self, request: ChargeRequest) -> ChargeResult:
        method = request.payment_method or "ok"
        if method == "declined":
            return ChargeResult(False, failure_code="card_declined", failure_message="The card was declined.")
        match = _RECOVER.fullmatch(method)
        if match and request.attempt_number <= int(match.group(1)):
            return ChargeResult(
                False,
                failure_code="insufficient_funds",
                failure_message="The card has insufficient funds.",
            )
        return ChargeResult(True, reference=_reference("ch", request.idempotency_key))

    def refund(self, request: RefundRequest) -> RefundResult:
        return RefundResult(True, reference=_reference("re", request.idempotency_key))
