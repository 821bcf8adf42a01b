"""Associations between records (CRM associations API v4): storage and the batch endpoints' work.

What it covers, from HubSpot's v4 spec and docs:

* HubSpot-defined association types per direction: the unlabeled ("default") ones — deal→contact 3,
  contact→deal 4, deal→company 341, company→deal 342, contact→company 279, company→contact 280 — and
  the "Primary" company labels (contact→company 1, company→contact 2, deal→company 5, company→deal 6).
  An association is one relation seen from both sides: creating deal→contact (3) is also contact→deal
  (4). A labeled association always comes with the unlabeled one, and a record has at most one primary
  company (setting another moves it).
* ``batch/create`` (inputs ``{from, to, types}``) answers 201, or 207 with ``errors`` when some inputs
  name records that do not exist; ``batch/associate/default`` (inputs ``{from, to}``) answers 200, its
  errors in the body; associating a pair again changes nothing and is no error.
* ``batch/read`` answers 207 with ``crm.associations.NO_ASSOCIATIONS_FOUND`` for an id with no
  associations (or no record); at most 500 associations per input, then ``paging.next.after``.
* ``batch/archive`` (inputs ``{from, to: [...]}``) answers 204.

Archiving a record drops its associations. Assumed, not confirmed: 2,000 inputs per create/archive
request (a third-party figure); batch read takes 1,000 (HubSpot's changelog, February 2025).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from connectors.hubspot.sim import errors
from connectors.hubspot.sim.schema import OBJECT_TYPES, SINGULAR, TYPE_IDS

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
PAGE = 500  # associations per from-record per page (batch read and the list endpoint)
DEFAULT_TYPES: dict[tuple[str, str], int] = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
}
PRIMARY_TYPES: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
}
_OBJECT_TYPE_IDS = {kind: type_id for type_id, kind in TYPE_IDS.items()}
_PLURAL = {singular: plural for plural, singular in SINGULAR.items()}

Node = tuple[str, int]  # (object type, record id)


def object_type(name: str) -> str:
    """An object type as a v4 path names it: ``deals``, ``deal`` or ``0-3``."""
    kind = TYPE_IDS.get(name) or _PLURAL.get(name) or name
    if kind not in OBJECT_TYPES:
        raise errors.bad_request(f"Unable to infer object type from: {name}")
    return kind


def _label(from_type: str, to_type: str, type_id: int) -> str | None:
    return "Primary" if PRIMARY_TYPES.get((from_type, to_type)) == type_id else None


def _inverse(from_type: str, to_type: str, type_id: int) -> int:
    table = PRIMARY_TYPES if _label(from_type, to_type, type_id) else DEFAULT_TYPES
    return table[(to_type, from_type)]


class Associations:
    """Every association, kept from both sides: ``edges[a][b]`` is the set of type ids from a to b."""

    def __init__(self) -> None:
        self.edges: dict[Node, dict[Node, set[int]]] = defaultdict(dict)
        self.writes: Counter[tuple[str, str]] = Counter()  # API inputs applied, by (from, to) type

    def valid_type(self, from_type: str, to_type: str, type_id: int) -> bool:
        return type_id in (DEFAULT_TYPES.get((from_type, to_type)), PRIMARY_TYPES.get((from_type, to_type)))

    def add(self, source: Node, target: Node, type_id: int) -> None:
        (from_type, _), (to_type, _) = source, target
        wanted = {DEFAULT_TYPES[(from_type, to_type)], type_id}
        if _label(from_type, to_type, type_id):
            self._move_primary(source, to_type, type_id)
        for one in wanted:
            self.edges[source].setdefault(target, set()).add(one)
            self.edges[target].setdefault(source, set()).add(_inverse(from_type, to_type, one))

    def _move_primary(self, source: Node, to_type: str, type_id: int) -> None:
        for target, types in self.edges.get(source, {}).items():
            if target[0] == to_type and type_id in types:
                types.discard(type_id)
                self.edges[target][source].discard(_inverse(source[0], to_type, type_id))

    def remove(self, source: Node, target: Node) -> None:
        """Every association between the two records (the unlabeled one takes its labels with it)."""
        self.edges.get(source, {}).pop(target, None)
        self.edges.get(target, {}).pop(source, None)

    def drop(self, node: Node) -> None:
        """A record was archived: it is associated with nothing any more."""
        for target in self.edges.pop(node, {}):
            self.edges.get(target, {}).pop(node, None)

    def of(self, source: Node, to_type: str) -> list[tuple[int, list[int]]]:
        """(target id, its type ids) for every record of ``to_type`` associated with ``source``."""
        return sorted(
            (target_id, sorted(types))
            for (kind, target_id), types in self.edges.get(source, {}).items()
            if kind == to_type and types
        )

    def clear(self) -> None:
        self.edges.clear()
        self.writes.clear()

    # --- answers ---------------------------------------------------------------------------------

    def created(self, source: Node, target: Node, type_ids: list[int]) -> dict[str, Any]:
        """One result of ``batch/create`` (``LabelsBetweenObjectPair``)."""
        (from_type, from_id), (to_type, to_id) = source, target
        labels = [label for t in type_ids if (label := _label(from_type, to_type, t))]
        return {
            "fromObjectTypeId": _OBJECT_TYPE_IDS[from_type],
            "fromObjectId": str(from_id),
            "toObjectTypeId": _OBJECT_TYPE_IDS[to_type],
            "toObjectId": str(to_id),
            "labels": labels,
        }

    def read(
        self, source: Node, to_type: str, after: int, limit: int = PAGE
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of ``MultiAssociatedObjectWithLabel`` from offset ``after``, and the next offset."""
        found = self.of(source, to_type)
        page = [
            {
                "toObjectId": str(target_id),
                "associationTypes": [
                    {"category": HUBSPOT_DEFINED, "typeId": t, "label": _label(source[0], to_type, t)}
                    for t in type_ids
                ],
            }
            for target_id, type_ids in found[after : after + limit]
        ]
        return page, (after + limit if len(found) > after + limit else None)


def default_result(source: Node, target: Node, type_id: int) -> dict[str, Any]:
    """One result of ``batch/associate/default`` (``PublicDefaultAssociation``)."""
    return {
        "from": {"id": str(source[1])},
        "to": {"id": str(target[1])},
        "associationSpec": {"associationCategory": HUBSPOT_DEFINED, "associationTypeId": type_id},
    }


def not_found(side: str, kind: str, ids: list[str]) -> dict[str, Any]:
    """A ``StandardError`` naming the ids of one side that are not live records."""
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": f"No {SINGULAR[kind]} exists with id {', '.join(ids)}.",
        "context": {f"{side}ObjectId": ids, f"{side}ObjectType": [SINGULAR[kind]]},
        "errors": [],
        "links": {},
    }


def none_associated(from_type: str, to_type: str, from_id: str) -> dict[str, Any]:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
        "message": f"No {SINGULAR[to_type]} is associated with {SINGULAR[from_type]} {from_id}.",
        "context": {
            "fromObjectId": [from_id],
            "fromObjectType": [SINGULAR[from_type]],
            "toObjectType": [SINGULAR[to_type]],
        },
        "errors": [],
        "links": {},
    }


def pair_input(item: dict[str, Any]) -> tuple[str, str]:
    """The (from id, to id) of a ``{from: {id}, to: {id}}`` input; 400 if it has not got both."""
    ends = []
    for side in ("from", "to"):
        end = item.get(side)
        if not isinstance(end, dict) or end.get("id") in (None, ""):
            raise errors.bad_request(f"each input needs {side}.id")
        ends.append(str(end["id"]))
    return ends[0], ends[1]


def type_ids(item: dict[str, Any], from_type: str, to_type: str, store: Associations) -> list[int]:
    """The type ids of a ``batch/create`` input's ``types``; 400 for a missing or unknown one."""
    types = item.get("types")
    if not isinstance(types, list) or not types:
        raise errors.bad_request("each input needs types: [{associationCategory, associationTypeId}]")
    out = []
    for spec in types:
        if not isinstance(spec, dict):
            raise errors.bad_request("each type must be an object")
        category, type_id = spec.get("associationCategory"), spec.get("associationTypeId")
        if category != HUBSPOT_DEFINED or not isinstance(type_id, int) or isinstance(type_id, bool):
            raise errors.bad_request(
                f"associationCategory {category!r} with associationTypeId {type_id!r} is not a valid "
                f"association type from {SINGULAR[from_type]} to {SINGULAR[to_type]}"
            )
        if not store.valid_type(from_type, to_type, type_id):
            raise errors.bad_request(
                f"associationTypeId {type_id} is not a valid association type from {SINGULAR[from_type]} "
                f"to {SINGULAR[to_type]}"
            )
        out.append(type_id)
    return out
