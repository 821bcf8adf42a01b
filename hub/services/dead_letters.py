"""Dead letters: sync work that failed for good, kept with the scrubbed request and response.

Replaying one marks its record dirty again (attempts reset) so the next push
job sends the record's current state; the write stays idempotent (HubSpot
upserts on ``abohub_id``; vendors with an idempotency header get the stored
key). A later successful push of the same record resolves its dead letters.
"""

from __future__ import annotations

from sqlalchemy import select

from hub.domain.errors import NotFound, StateConflict
from hub.services.runtime import Runtime
from hub.store.models import DeadLetter, Event, SyncState


def replay_dead_letter(dead_letter_id: str, hub: Runtime, actor: str) -> DeadLetter:
    now = hub.clock.now()
    with hub.uow(actor) as uow:
        letter = uow.session.get(DeadLetter, dead_letter_id, with_for_update=True)
        if letter is None:
            raise NotFound(f"no dead letter {dead_letter_id}")
        if letter.resolved_at is not None:
            raise StateConflict("the dead letter is already resolved")
        if letter.local_id is None:
            raise StateConflict("this dead letter names no local record to send again")
        state = uow.session.scalar(
            select(SyncState)
            .where(
                SyncState.connection_id == letter.connection_id,
                SyncState.object_type == letter.object_type,
                SyncState.local_id == letter.local_id,
            )
            .with_for_update()
        )
        latest_event = uow.session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0
        if state is None:
            uow.session.add(
                SyncState(
                    connection_id=letter.connection_id,
                    object_type=letter.object_type,
                    local_id=letter.local_id,
                    wanted_event_id=latest_event,
                    dirty_since=now,
                    attempts=0,
                    next_attempt_at=now,
                )
            )
        else:
            state.attempts, state.next_attempt_at, state.last_error = 0, now, None
        letter.replayed_at = now
        uow.record(
            "dead_letter.replayed",
            "dead_letter",
            letter.id,
            data={
                "connection_id": letter.connection_id,
                "object_type": letter.object_type,
                "local_id": letter.local_id,
                "idempotency_key": letter.idempotency_key,
            },
        )
        uow.commit()
        uow.session.expunge(letter)
        return letter
