"""The mapping document: what loads, what dumps, and the exact path of every problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from hub.domain.errors import InvalidRequest
from mappings.errors import MappingError, MappingInvalid
from mappings.schema import Direction, FieldMapping, Mapping, MatchKey, Policy
from mappings.transforms import Step
from tests.mappings.hubspot import CUSTOMER_CONTACT


def test_the_hubspot_contact_mapping_loads() -> None:
    mapping = Mapping.load(CUSTOMER_CONTACT)
    assert mapping.object_type == "customer"
    assert mapping.remote_object == "contacts"
    assert mapping.keys[0] == MatchKey("email", "email")
    name = mapping.field("firstname+lastname")
    assert name == FieldMapping(
        local=("name",),
        remote=("firstname", "lastname"),
        direction=Direction.BOTH,
        to_remote=(Step("trim"), Step("split_name")),
        to_local=(Step("join_name"),),
        policy=Policy.MANUAL,
    )
    assert mapping.field("abohub_mrr").policy is Policy.HUB_WINS  # a push field's source wins
    assert mapping.field("hubspot_owner_id").policy is Policy.REMOTE_WINS
    assert mapping.field("lifecyclestage").local == ()
    assert mapping.field("firstname+lastname").describe() == "name ↔ firstname+lastname"
    assert mapping.field("lifecyclestage").describe() == "(constant) → lifecyclestage"
    assert "firstname" in mapping.remote_fields


def test_dump_then_load_is_the_same_mapping() -> None:
    mapping = Mapping.load(CUSTOMER_CONTACT)
    assert Mapping.load(mapping.dump()) == mapping
    assert mapping.dump()["fields"][0]["remote"] == ["firstname", "lastname"]
    assert mapping.dump()["fields"][1]["remote"] == "email"


def test_a_single_key_object_is_accepted() -> None:
    data = {**CUSTOMER_CONTACT, "key": {"local": "email", "remote": "email"}}
    assert Mapping.load(data).keys == (MatchKey("email", "email"),)


def test_unknown_field_name_is_an_error() -> None:
    with pytest.raises(MappingError, match="has no field 'phone'"):
        Mapping.load(CUSTOMER_CONTACT).field("phone")


Edit = Callable[[dict[str, Any]], None]


def entry(index: int, **changes: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data["fields"][index].update(changes)

    return edit


def drop(index: int, name: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        del data["fields"][index][name]

    return edit


def top(**changes: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        data.update(changes)

    return edit


def without(name: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        del data[name]

    return edit


CASES: list[tuple[str, Edit, str, str]] = [
    # (case, edit, exact path, message fragment)
    (
        "unknown transform",
        entry(0, to_remote=[{"name": "trim"}, {"name": "splitname"}]),
        "fields.0.to_remote.1.name",
        "unknown transform 'splitname' (known: bool_to_string,",
    ),
    (
        "bad parameter value",
        entry(0, to_remote=[{"name": "split_name", "part": "middle"}]),
        "fields.0.to_remote.0.part",
        "split_name: Must be one of: first, last.",
    ),
    (
        "unknown parameter",
        entry(1, to_local=[{"name": "trim", "side": "left"}]),
        "fields.1.to_local.0.side",
        "trim: not a parameter of this transform",
    ),
    (
        "unknown currency",
        entry(5, to_remote=[{"name": "minor_to_decimal", "currency": "KRONER"}]),
        "fields.5.to_remote.0.currency",
        "minor_to_decimal: unknown currency 'KRONER'",
    ),
    (
        "missing parameter",
        entry(5, to_remote=[{"name": "minor_to_decimal"}]),
        "fields.5.to_remote.0.currency",
        "minor_to_decimal: Missing data for required field.",
    ),
    (
        "transform without a name",
        entry(5, to_remote=[{"currency": "DKK"}]),
        "fields.5.to_remote.0.name",
        "give the transform's name",
    ),
    (
        "transform that is not an object",
        entry(5, to_remote=["minor_to_decimal"]),
        "fields.5.to_remote.0",
        "must be an object",
    ),
    (
        "enum that cannot be reversed",
        entry(6, to_remote=[{"name": "enum_map", "values": {"a": "X", "b": "X"}, "reverse": True}]),
        "fields.6.to_remote.0.values",
        "'X' is the value of both 'a' and 'b'",
    ),
    (
        "enum with a float",
        entry(6, to_remote=[{"name": "enum_map", "values": {"a": 1.5}}]),
        "fields.6.to_remote.0.values",
        "values must be text, whole numbers or booleans",
    ),
    (
        "unknown direction",
        entry(1, direction="sideways"),
        "fields.1.direction",
        "Must be one of: push, pull, both.",
    ),
    ("unknown policy", entry(1, policy="loudest_wins"), "fields.1.policy", "Must be one of: hub_wins,"),
    ("two-way without a policy", drop(1, "policy"), "fields.1.policy", "required for a two-way field"),
    (
        "push with another policy",
        entry(5, policy="manual"),
        "fields.5.policy",
        "a push field always takes the hub's",
    ),
    ("pull with another policy", entry(9, policy="hub_wins"), "fields.9.policy", "a pull field always takes"),
    ("push without to_remote", drop(5, "to_remote"), "fields.5.to_remote", "required when the field pushes"),
    ("both without to_local", drop(1, "to_local"), "fields.1.to_local", "required when the field pulls"),
    ("push with to_local", entry(5, to_local=[]), "fields.5.to_local", "a push field brings nothing back"),
    ("pull with to_remote", entry(9, to_remote=[]), "fields.9.to_remote", "a pull field sends nothing"),
    ("two-way without local", drop(1, "local"), "fields.1.local", "only a push field may leave it out"),
    (
        "constant without a pipeline",
        entry(8, to_remote=[]),
        "fields.8.to_remote",
        "needs a pipeline that makes",
    ),
    (
        "one local into two remote without a pipeline",
        entry(0, to_remote=[]),
        "fields.0.to_remote",
        "an empty pipeline cannot turn 1 local into 2 remote fields",
    ),
    (
        "two remote into one local without a pipeline",
        entry(0, to_local=[]),
        "fields.0.to_local",
        "an empty pipeline cannot turn 2 remote into 1 local fields",
    ),
    (
        "remote field named twice",
        entry(0, remote=["firstname", "firstname"]),
        "fields.0.remote",
        "named twice",
    ),
    ("empty remote list", entry(0, remote=[]), "fields.0.remote", "a field name, or a non-empty list"),
    ("blank local name", entry(1, local=" "), "fields.1.local", "non-empty text"),
    (
        "remote field written by two mappings",
        entry(3, remote="lastname"),
        "fields.3.remote",
        "remote field 'lastname' is already mapped by fields.0",
    ),
    (
        "push writing a remote field another entry reads",
        entry(7, remote="hubspot_owner_id"),
        "fields.9.remote",
        "remote field 'hubspot_owner_id' is already mapped by fields.7",
    ),
    (
        "local field fed by two pulls",
        entry(9, local="email"),
        "fields.9.local",
        "local field 'email' is already fed by the pull of fields.1",
    ),
    ("unknown entry key", entry(1, transform=[]), "fields.1.transform", "Unknown field."),
    ("unknown top-level key", top(connection="hubspot"), "connection", "Unknown field."),
    ("no key", without("key"), "key", "Missing data for required field."),
    ("empty key list", top(key=[]), "key", "Shorter than minimum length 1."),
    (
        "key twice",
        top(key=[{"local": "email", "remote": "email"}, {"local": "email", "remote": "email"}]),
        "key.1",
        "listed twice",
    ),
    ("key without remote", top(key=[{"local": "email"}]), "key.0.remote", "Missing data for required field."),
    ("no fields", top(fields=[]), "fields", "Shorter than minimum length 1."),
    ("no object type", without("object_type"), "object_type", "Missing data for required field."),
]


@pytest.mark.parametrize(
    ("edit", "path", "fragment"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_validation_errors_name_the_exact_path(edit: Edit, path: str, fragment: str) -> None:
    data = copy.deepcopy(CUSTOMER_CONTACT)
    edit(data)
    with pytest.raises(MappingInvalid) as caught:
        Mapping.load(data)
    problems = caught.value.fields
    assert path in problems, problems
    assert any(fragment in message for message in problems[path]), problems[path]


def test_the_error_is_a_422_request_error_naming_field_and_transform() -> None:
    data = copy.deepcopy(CUSTOMER_CONTACT)
    data["fields"][0]["to_remote"] = [{"name": "trim"}, {"name": "split_name", "part": "middle"}]
    with pytest.raises(MappingInvalid) as caught:
        Mapping.load(data)
    error = caught.value
    assert isinstance(error, InvalidRequest)  # the API answers 422 with error.fields
    assert error.code == "invalid_mapping"
    assert "customer ↔ contacts" in error.message
    assert (
        "fields.0.to_remote.1.part (name ↔ firstname+lastname): split_name: Must be one of" in error.message
    )


def test_every_problem_is_reported_at_once_within_a_level() -> None:
    data = copy.deepcopy(CUSTOMER_CONTACT)
    data["fields"][0]["to_remote"] = [{"name": "nope"}]
    data["fields"][5]["to_remote"] = [{"name": "minor_to_decimal", "currency": "ZZZ"}]
    data["fields"][1]["direction"] = "sideways"
    with pytest.raises(MappingInvalid) as caught:
        Mapping.load(data)
    assert set(caught.value.fields) == {
        "fields.0.to_remote.0.name",
        "fields.5.to_remote.0.currency",
        "fields.1.direction",
    }


def test_a_mapping_that_is_not_an_object() -> None:
    with pytest.raises(MappingInvalid) as caught:
        Mapping.load([])  # type: ignore[arg-type]
    assert "_schema" in caught.value.fields
