"""The unit of work: one transaction that writes a change, its events and outbox rows.

Handlers record domain events with :meth:`UnitOfWork.record`; on
:meth:`UnitOfWork.commit` the events, one outbox row per event and any MRR
movements are inserted in bulk, inside the same transaction as the change
itself. Leaving the ``with`` block without committing rolls everything back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from connectors.base import PaymentGateway
from hub.services.clock import Clock
from hub.services.snapshot import jsonable
from hub.store.models import Event, MrrMovement, OutboxMessage


@dataclass
class RecordedEvent:
    type: str
    aggregate_type: str
    aggregate_id: str
    customer_id: str | None
    occurred_at: datetime
    data: dict[str, Any]
    movement: dict[str, Any] | None = None


@dataclass
class UnitOfWork:
    session_factory: sessionmaker[Session]
    clock: Clock
    settings: Settings
    gateway: PaymentGateway
    actor: str = "system"
    events: list[RecordedEvent] = field(default_factory=list)
    _session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use it in a with block")
        return self._session

    def __enter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("the unit of work is already open")
        self._session = self.session_factory()
        self.now = self.clock.now()
        self.events = []
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()
            self._session = None
            self.events = []

    def record(
        self,
        type: str,
        aggregate_type: str,
        aggregate_id: str,
        *,
        customer_id: str | None = None,
        data: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
        movement: dict[str, Any] | None = None,
    ) -> None:
        self.events.append(
            RecordedEvent(
                type=type,
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                customer_id=customer_id,
                occurred_at=occurred_at or self.now,
                data=jsonable(data or {}),
                movement=movement,
            )
        )

    def flush_events(self) -> None:
        """Write the recorded events, their outbox rows and movements (still uncommitted)."""
        if not self.events:
            return
        session = self.session
        session.flush()
        recorded_at = datetime.now(UTC)  # wall time of writing, even when the clock is fixed
        rows = [
            {
                "type": e.type,
                "aggregate_type": e.aggregate_type,
                "aggregate_id": e.aggregate_id,
                "customer_id": e.customer_id,
                "actor": self.actor,
                "occurred_at": e.occurred_at,
                "recorded_at": recorded_at,
                "data": e.data,
            }
            for e in self.events
        ]
        ids = session.scalars(insert(Event).returning(Event.id, sort_by_parameter_order=True), rows).all()
        outbox = []
        movements = []
        for event_id, event in zip(ids, self.events, strict=True):
            outbox.append(
                {
                    "event_id": event_id,
                    "topic": event.type,
                    "aggregate_type": event.aggregate_type,
                    "aggregate_id": event.aggregate_id,
                    "payload": {
                        "event_id": event_id,
                        "type": event.type,
                        "occurred_at": event.occurred_at.isoformat(),
                        "data": event.data,
                    },
                    "created_at": recorded_at,
                    "relayed_at": None,
                }
            )
            if event.movement is not None:
                movements.append({"event_id": event_id, **event.movement})
        session.execute(insert(OutboxMessage), outbox)
        if movements:
            session.execute(insert(MrrMovement), movements)
        self.events = []

    def commit(self) -> None:
        self.flush_events()
        self.session.commit()
