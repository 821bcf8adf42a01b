"""Work waiting in the demo's HubSpot connection: a few conflicts and dead letters for a person to settle.

Staged once, the first time ``abohub serve --simulators`` starts the demo's simulator (a connection with
no conflicts and no dead letters yet), synchronously and before the server forks:

* the simulator is filled (a reconcile links every customer and subscription to a record in it);
* four customers were renamed on both sides since: a conflict each on their name (``manual``);
* one customer's new email, typed with " at " for "@", is one HubSpot refuses: a dead letter that settles
  by itself once the email is corrected in the admin, when the contact takes the new address;
* two customers' new VAT numbers were refused while HubSpot's private app lacked its contacts write scope:
  dead letters that a replay sends again.

Later starts stage nothing: the conflicts and dead letters are in the database, and the queued reconcile
refills the (in-memory) simulator from the hub.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select

from connectors.hubspot.simulator import HubSpotSimulator
from hub.bootstrap import Hub
from hub.services.customers import UpdateCustomer, update_customer
from hub.services.reconcile import reconcile
from hub.services.sync import push_changes
from hub.store.models import Conflict, Customer, DeadLetter, Link
from jobs.queue import DatabaseQueue
from jobs.reconcile_jobs import RECONCILE
from jobs.relay import relay
from jobs.runtime import make_queue
from jobs.schedule import SCHEDULE
from jobs.sync_jobs import poll_connections

log = logging.getLogger(__name__)
ACTOR = "cli:demo"
RENAMES = (("Olsen", "Kristensen"), ("Lund", "Holm"), ("Berg", "Dahl"), ("Møller", "Bech"))
NEW_VAT_NUMBERS = ("DK31415926", "DK27182818")
WANTED = len(RENAMES) + 1 + len(NEW_VAT_NUMBERS)  # customers the staging changes
WRITES = r"/contacts/batch/(create|update|upsert)"


@dataclass(frozen=True)
class Staged:
    conflicts: int
    dead_letters: int


def needs_staging(hub: Hub, connection_id: str) -> bool:
    """A connection with no conflicts and no dead letters ever, in a store with the demo's customers."""
    with hub.session_factory() as session:
        if (session.scalar(select(func.count()).select_from(Customer)) or 0) < WANTED:
            return False
        conflicts = session.scalar(select(func.count()).where(Conflict.connection_id == connection_id))
        letters = session.scalar(select(func.count()).where(DeadLetter.connection_id == connection_id))
    return not conflicts and not letters


def _linked_customers(hub: Hub, connection_id: str, count: int) -> list[tuple[Customer, str]]:
    """Customers with a contact in HubSpot, in a stable order (active first, then by name), no two with
    the same name: a person working the queue tells them apart by name."""
    with hub.session_factory() as session:
        rows = session.execute(
            select(Customer, Link.remote_id)
            .join(Link, Link.local_id == Customer.id)
            .where(Link.connection_id == connection_id, Link.object_type == "customer")
            .order_by(Customer.revenue_state, Customer.name, Customer.id)
        ).all()
    picked: dict[str, tuple[Customer, str]] = {}
    for customer, remote_id in rows:
        picked.setdefault(customer.name, (customer, remote_id))
        if len(picked) == count:
            break
    return list(picked.values())


def _push(hub: Hub, connection_id: str) -> None:
    """Relay the whole outbox, then push every dirty customer: each call does one batch."""
    queue = make_queue(hub)
    relayed = True
    while relayed:
        relayed = relay(hub, queue).relayed > 0
    more = True
    while more:
        more = push_changes(hub, connection_id, "customer").more


def _reconcile_as_tonights_run(hub: Hub, connection_id: str) -> None:
    """Reconcile now, as the run of the current nightly slot where the queue is the database: else the
    scheduler's first tick would reconcile again and repair the refused changes before anyone sees them."""
    queue = make_queue(hub)
    nightly = next(p for p in SCHEDULE if p.function == RECONCILE)
    slot = nightly.job_id(hub.clock.now())
    if isinstance(queue, DatabaseQueue) and queue.enqueue_once(RECONCILE, {}, slot, nightly.remember):
        job = queue.take()
        if job is not None and job.id == slot:
            reconcile(hub, connection_id)
            queue.finish(job)
            return
        if job is not None:
            queue.retry(job, "", hub.clock.now())
    reconcile(hub, connection_id)


def stage(hub: Hub, connection_id: str, simulator: HubSpotSimulator) -> Staged:
    _reconcile_as_tonights_run(hub, connection_id)
    _push(hub, connection_id)  # the demo's own history, already in HubSpot: nothing is written
    picked = _linked_customers(hub, connection_id, WANTED)
    if len(picked) < WANTED:
        return Staged(0, 0)
    renamed, refused_email, new_vat = (
        picked[: len(RENAMES)],
        picked[len(RENAMES)],
        picked[len(RENAMES) + 1 :],
    )
    for (customer, contact), (in_hubspot, in_hub) in zip(renamed, RENAMES, strict=True):
        first = customer.name.split()[0]
        simulator.edit("contacts", contact, {"lastname": in_hubspot})
        update_customer(UpdateCustomer(customer.id, {"name": f"{first} {in_hub}"}), hub.uow(ACTOR))
    customer, _ = refused_email
    mailbox, domain = customer.email.split("@", 1)
    typo = f"{mailbox} at mail.{domain}"  # a new address, typed the way people dictate it
    update_customer(UpdateCustomer(customer.id, {"email": typo}), hub.uow(ACTOR))
    _push(hub, connection_id)
    poll_connections(hub)  # the cursors move past everything: the first poll must not repair what follows

    simulator.faults.add("missing_scopes", count=None, path=WRITES)
    for (customer, _), vat_number in zip(new_vat, NEW_VAT_NUMBERS, strict=True):
        update_customer(UpdateCustomer(customer.id, {"vat_number": vat_number}), hub.uow(ACTOR))
    _push(hub, connection_id)
    simulator.faults.clear()

    with hub.session_factory() as session:
        conflicts = session.scalar(
            select(func.count()).where(
                Conflict.connection_id == connection_id, Conflict.resolved_at.is_(None)
            )
        )
        letters = session.scalar(
            select(func.count()).where(
                DeadLetter.connection_id == connection_id, DeadLetter.resolved_at.is_(None)
            )
        )
    return Staged(conflicts or 0, letters or 0)
