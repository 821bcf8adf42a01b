"""The composition root: builds the engine, sessions, clock and gateway once."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from connectors.base import PaymentGateway
from connectors.testpay import TestPayGateway
from hub.services.clock import Clock, SystemClock
from hub.services.uow import UnitOfWork
from hub.store.db import make_engine, make_session_factory


@dataclass
class Hub:
    """Everything a request, a command or a job needs to reach the store."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    clock: Clock = field(default_factory=SystemClock)
    gateway: PaymentGateway = field(default_factory=TestPayGateway)

    def uow(self, actor: str = "system") -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.clock, self.settings, self.gateway, actor)

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings, clock: Clock | None = None, gateway: PaymentGateway | None = None) -> Hub:
    engine = make_engine(settings.database_url)
    return Hub(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        clock=clock or SystemClock(),
        gateway=gateway or TestPayGateway(),
    )
