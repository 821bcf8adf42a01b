"""The demo's first start sets out work for a person: name conflicts and dead letters, once."""

from __future__ import annotations

from sqlalchemy import select

from hub.simulators import add_demo_connection, start_simulators
from hub.store.models import Conflict, Customer, DeadLetter, JobRun
from jobs.queue import QUEUED
from jobs.reconcile_jobs import RECONCILE
from tests import factories
from tests.integration.test_simulators import free_port

NAMES = (
    "Karen Jensen",
    "Mads Nielsen",
    "Sofie Hansen",
    "Emil Pedersen",
    "Ida Larsen",
    "Noah Sørensen",
    "Freja Rasmussen",
    "Oscar Jørgensen",
)


def demo_store(hub, count: int) -> None:
    pro = factories.plan(hub, name="Pro")
    for name in NAMES[:count]:
        factories.subscribe(hub, factories.customer(hub, name).id, pro.id)


def open_work(hub, connection_id):
    with hub.session_factory() as session:
        conflicts = session.scalars(
            select(Conflict).where(Conflict.connection_id == connection_id, Conflict.resolved_at.is_(None))
        ).all()
        letters = session.scalars(
            select(DeadLetter).where(
                DeadLetter.connection_id == connection_id, DeadLetter.resolved_at.is_(None)
            )
        ).all()
        return conflicts, letters


def stop(running) -> None:
    for one in running:
        one.simulator.stop()


def test_the_first_start_stages_four_name_conflicts_and_three_dead_letters(hub):
    demo_store(hub, 8)
    namesake = factories.customer(hub, "Emil Pedersen", email="emil.p@example.dk")
    factories.subscribe(
        hub, namesake.id, factories.plan(hub, name="Basis").id
    )  # two of one name in the queue would confuse
    with hub.session_factory() as session:
        names_before = {c.id: c.name for c in session.scalars(select(Customer))}
    connection_id = add_demo_connection(hub, free_port())

    running = start_simulators(hub, "http://127.0.0.1:9")
    try:
        assert running[0].staged is not None
        assert (running[0].staged.conflicts, running[0].staged.dead_letters) == (4, 3)
        conflicts, letters = open_work(hub, connection_id)
        assert len(conflicts) == 4
        for conflict in conflicts:  # both sides renamed the customer, each differently
            assert conflict.remote_field == "firstname,lastname"
            assert conflict.hub_value["name"].split()[-1] in {"Kristensen", "Holm", "Dahl", "Bech"}
            assert conflict.remote_value["name"].split()[-1] in {"Olsen", "Lund", "Berg", "Møller"}
        with hub.session_factory() as session:
            emails = {c.id: c.email for c in session.scalars(select(Customer))}
        refused = [letter for letter in letters if " at " in emails[letter.local_id]]
        assert len(refused) == 1 and "email" in refused[0].reason.lower()
        assert len([letter for letter in letters if "scope" in letter.reason.lower()]) == 2
        staged = [item.local_id for item in (*conflicts, *letters)]
        assert len({names_before[local_id] for local_id in staged}) == 7

        contacts = running[0].simulator.records("contacts")
        assert len(contacts) == 9  # every customer reached the simulator
        lastnames = {c["properties"].get("lastname") for c in contacts}
        assert {"Olsen", "Lund", "Berg"} <= lastnames  # the renames on HubSpot's side stay there
    finally:
        stop(running)

    again = start_simulators(hub, "http://127.0.0.1:9")  # a restart: nothing more is staged
    try:
        assert again[0].staged is None
        conflicts_after, letters_after = open_work(hub, connection_id)
        assert (len(conflicts_after), len(letters_after)) == (4, 3)
        with hub.session_factory() as session:
            queued = session.scalars(select(JobRun.function).where(JobRun.status == QUEUED)).all()
        assert RECONCILE in queued  # the fresh simulator is refilled from the hub instead
    finally:
        stop(again)


def test_a_store_too_small_for_the_story_gets_only_the_reconcile(hub):
    demo_store(hub, 3)
    connection_id = add_demo_connection(hub, free_port())

    running = start_simulators(hub, "http://127.0.0.1:9")
    try:
        assert running[0].staged is None
        assert open_work(hub, connection_id) == ([], [])
    finally:
        stop(running)
