"""What long-running service code (sync, jobs) needs from the composition root, as a protocol.

``hub.bootstrap.Hub`` satisfies it; services depend on this shape, never on the bootstrap.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from hub.services.clock import Clock
from hub.services.uow import UnitOfWork


class Runtime(Protocol):
    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock

    def uow(self, actor: str = "system") -> UnitOfWork: ...
