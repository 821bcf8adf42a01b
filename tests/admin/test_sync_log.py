"""The sync log: job runs filtered by connection, object type and status; dead letters and their replay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from hub.services import customers
from hub.services.sync import push_changes
from hub.store.models import DeadLetter, JobRun, Link, SyncState
from jobs.queue import DatabaseQueue
from jobs.relay import push_job_id, relay
from tests import factories

SCRIPT = "<script>alert(1)</script>"


def sync_out(hub, connection_id):  # type: ignore[no-untyped-def]
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    return push_changes(hub, connection_id, "customer")


def dead_letters(hub) -> list[DeadLetter]:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.local_id)))


def state_of(hub, local_id: str) -> SyncState | None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalar(select(SyncState).where(SyncState.local_id == local_id))


def is_linked(hub, local_id: str) -> bool:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.scalar(select(Link.remote_id).where(Link.local_id == local_id)) is not None


def push_job(hub, connection_id: str) -> JobRun | None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session:
        return session.get(JobRun, push_job_id(connection_id, "customer"))


def forget_jobs(hub) -> None:  # type: ignore[no-untyped-def]
    with hub.session_factory() as session, session.begin():
        session.query(JobRun).delete()


def refused_customers(hub, connection_id, *names: str):  # type: ignore[no-untyped-def]
    """Customers whose email HubSpot refuses: each push lands in the dead letters."""
    made = [factories.customer(hub, name, email=f"{name.split()[0].lower()} at example") for name in names]
    report = sync_out(hub, connection_id)
    assert report.dead_lettered == len(names)
    forget_jobs(hub)
    return made


def followed(browser, path: str, data: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    response = browser.post(path, data)
    assert response.status_code == 302, response.text
    return browser.get(response.headers["Location"])


def test_replaying_one_dead_letter_queues_the_push_that_then_delivers_it(admin, hub, sim, connection_id):
    [bo] = refused_customers(hub, connection_id, "Bo Dal")
    page = admin.get("/admin/sync/dead-letters").text
    [letter] = dead_letters(hub)
    assert letter.id in page and "INVALID_EMAIL" in page and "Request and response" in page
    assert f'/admin/customers/{bo.id}">Bo Dal</a>' in page  # the record by the customer's name
    assert sim.token not in page and "1 dead letter · page 1 of 1" in page

    customers.update_customer(customers.UpdateCustomer(bo.id, {"email": "bo@example.dk"}), hub.uow())
    assert state_of(hub, bo.id) is None  # given up on: nothing would send it again
    page = followed(admin, f"/admin/sync/dead-letters/{letter.id}/replay")
    assert "1 record(s) will be sent again" in page.text
    state = state_of(hub, bo.id)
    assert state is not None and state.attempts == 0 and state.next_attempt_at <= hub.clock.now()
    job = push_job(hub, connection_id)
    assert job is not None and job.status == "queued" and job.args["connection_id"] == connection_id
    assert dead_letters(hub)[0].replayed_at is not None

    assert push_changes(hub, connection_id, "customer").pushed == 1
    assert is_linked(hub, bo.id) and dead_letters(hub)[0].resolved_at is not None
    assert "No dead letters match." in admin.get("/admin/sync/dead-letters").text
    settled = admin.get("/admin/sync/dead-letters?state=resolved").text
    assert "Bo Dal</a>" in settled and "a later sync of the record went through" in settled
    again = followed(admin, f"/admin/sync/dead-letters/{letter.id}/replay")
    assert "already resolved" in again.text


def test_bulk_replay_sends_the_selected_only(admin, hub, sim, connection_id):
    bo, eva, ida = refused_customers(hub, connection_id, "Bo Dal", "Eva Lund", "Ida Holm")
    for customer in (bo, eva, ida):
        email = customer.email.replace(" at example", "@example.dk")
        customers.update_customer(customers.UpdateCustomer(customer.id, {"email": email}), hub.uow())
    by_customer = {letter.local_id: letter.id for letter in dead_letters(hub)}
    chosen = [by_customer[bo.id], by_customer[eva.id]]
    page = followed(admin, "/admin/sync/dead-letters/replay", {"dead_letter_id": chosen})
    assert "2 record(s) will be sent again" in page.text
    assert push_job(hub, connection_id) is not None
    assert state_of(hub, ida.id) is None and state_of(hub, bo.id) is not None
    assert push_changes(hub, connection_id, "customer").pushed == 2
    assert is_linked(hub, bo.id) and is_linked(hub, eva.id) and not is_linked(hub, ida.id)

    nothing = followed(admin, "/admin/sync/dead-letters/replay", {})
    assert "Select at least one dead letter" in nothing.text


def test_a_viewer_sees_the_log_without_buttons_and_cannot_replay(viewer, hub, sim, connection_id):
    refused_customers(hub, connection_id, "Bo Dal")
    [letter] = dead_letters(hub)
    page = viewer.get("/admin/sync/dead-letters")
    assert page.status_code == 200 and "Bo Dal" in page.text and "INVALID_EMAIL" in page.text
    assert "/replay" not in page.text and "dead_letter_id" not in page.text
    assert viewer.get("/admin/sync").status_code == 200
    assert viewer.post(f"/admin/sync/dead-letters/{letter.id}/replay").status_code == 403
    assert viewer.post("/admin/sync/dead-letters/replay", {"dead_letter_id": letter.id}).status_code == 403
    assert dead_letters(hub)[0].replayed_at is None and push_job(hub, connection_id) is None


def add_job_runs(hub, now, runs) -> None:  # type: ignore[no-untyped-def]
    """Job runs as (id, function, args, status, attempts, last error)."""
    with hub.session_factory() as session, session.begin():
        for job_id, function, args, status, attempts, error in runs:
            session.add(
                JobRun(
                    id=job_id,
                    function=function,
                    args=args,
                    status=status,
                    run_at=now,
                    attempts=attempts,
                    last_error=error,
                    created_at=now,
                    updated_at=now,
                )
            )


def shown_runs(admin, job_ids, query: str) -> set[str]:  # type: ignore[no-untyped-def]
    """Which of ``job_ids`` the sync log shows for ``query``."""
    page = admin.get(f"/admin/sync?{query}")
    assert page.status_code == 200
    return {job_id for job_id in job_ids if job_id in page.text}


def test_job_runs_filter_by_connection_object_type_and_status(admin, hub, clock):
    runs = [
        ("push:con_a:customer", "con_a", "customer", "failed", "HubSpot said no"),
        ("push:con_a:invoice", "con_a", "invoice", "done", None),
        ("push:con_b:customer", "con_b", "customer", "queued", None),
    ]
    add_job_runs(
        hub,
        clock.now(),
        [
            (job_id, "push_changes", {"connection_id": c, "object_type": t}, status, 3 if error else 1, error)
            for job_id, c, t, status, error in runs
        ],
    )

    def shown(query: str) -> set[str]:
        return shown_runs(admin, [run[0] for run in runs], query)

    assert shown("") == {run[0] for run in runs}
    assert "HubSpot said no" in admin.get("/admin/sync").text
    assert shown("object_type=customer") == {"push:con_a:customer", "push:con_b:customer"}
    assert shown("status=failed") == {"push:con_a:customer"}
    assert shown("status=done&limit=1") == {"push:con_a:invoice"}
    assert admin.get("/admin/sync?status=bogus").status_code == 400


def test_periodic_runs_that_went_fine_are_hidden_unless_asked_for(admin, hub, clock):
    runs = [
        ("periodic:relay_outbox:1", "relay_outbox", "done", None),
        ("periodic:relay_outbox:2", "relay_outbox", "failed", "the database went away"),
        ("periodic:poll_connections:3", "poll_connections", "queued", None),
        ("push:con_a:customer", "push_changes", "done", None),
    ]
    add_job_runs(hub, clock.now(), [(job_id, fn, {}, status, 1, error) for job_id, fn, status, error in runs])

    def shown(query: str) -> set[str]:
        return shown_runs(admin, [run[0] for run in runs], query)

    everything = {run[0] for run in runs}
    assert shown("") == everything - {"periodic:relay_outbox:1"}
    assert shown("periodic=y") == everything
    assert shown("status=done") == {"push:con_a:customer"}
    assert shown("status=done&periodic=y") == {"periodic:relay_outbox:1", "push:con_a:customer"}
    assert 'name="periodic"' in admin.get("/admin/sync").text


def test_job_runs_filter_by_a_real_connection(admin, hub, sim, connection_id):
    factories.customer(hub, "Anna Berg")
    relay(hub, DatabaseQueue(hub.session_factory, hub.clock, timedelta(minutes=5)))
    page = admin.get(f"/admin/sync?connection_id={connection_id}&object_type=customer").text
    assert push_job_id(connection_id, "customer") in page
    assert push_job_id(connection_id, "customer") not in admin.get("/admin/sync?object_type=invoice").text


def test_a_dead_letter_reason_is_escaped(admin, hub, clock, connection_id):
    with hub.session_factory() as session, session.begin():
        session.add(
            DeadLetter(
                id="dl_script",
                connection_id=connection_id,
                object_type="customer",
                local_id="cus_x",
                operation="upsert",
                idempotency_key="k",
                reason=SCRIPT,
                request={"body": SCRIPT},
                response=None,
                attempts=5,
                created_at=clock.now(),
            )
        )
    page = admin.get("/admin/sync/dead-letters").text
    assert "dl_script" in page and SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
