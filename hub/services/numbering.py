"""Gap-free document numbers.

A series is one row in ``number_sequences``. Allocating ``n`` numbers is one
``UPDATE ... RETURNING`` that adds ``n`` and locks the row until the
transaction ends, so concurrent billing runs take turns, and a rolled-back
transaction gives its numbers back: no gaps, no duplicates.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from hub.store.models import NumberSequence

INVOICE_SERIES = "invoice"
CREDIT_NOTE_SERIES = "credit_note"


def allocate(session: Session, series: str, count: int = 1) -> range:
    """``count`` consecutive numbers from ``series``, valid once the transaction commits."""
    if count < 1:
        raise ValueError("count must be at least 1")
    last = session.scalar(
        update(NumberSequence)
        .where(NumberSequence.name == series)
        .values(last_value=NumberSequence.last_value + count)
        .returning(NumberSequence.last_value)
    )
    if last is None:
        raise LookupError(f"number series {series!r} is missing; run `abohub db upgrade`")
    return range(last - count + 1, last + 1)


def ensure_series(session: Session, *names: str) -> None:
    existing = set(session.scalars(select(NumberSequence.name)))
    missing = [{"name": name, "last_value": 0} for name in names if name not in existing]
    if missing:
        session.execute(insert(NumberSequence), missing)
