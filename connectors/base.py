"""The contracts connectors implement.

The payment-gateway port is what the hub's billing needs from any gateway
(Stripe, QuickPay, GoCardless, the built-in test gateway): charge an amount
for an invoice and refund a payment, both idempotent by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    customer_id: str
    invoice_id: str
    amount: int
    currency: str
    attempt_number: int
    payment_method: str | None = None
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChargeResult:
    succeeded: bool
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    idempotency_key: str
    payment_reference: str
    amount: int
    currency: str


@dataclass(frozen=True)
class RefundResult:
    succeeded: bool
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class PaymentGateway(Protocol):
    """Port implemented by every payments connector."""

    name: str

    def charge(self, request: ChargeRequest) -> ChargeResult: ...

    def refund(self, request: RefundRequest) -> RefundResult: ...
