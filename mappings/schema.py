"""The mapping document (stored per connection and object type), its validation and the ``Mapping`` it loads.

A mapping as stored::

    {
      "object_type": "customer",
      "remote_object": "contacts",
      "key": [{"local": "email", "remote": "email"}, {"local": "vat_number", "remote": "vat"}],
      "fields": [
        {"local": "name", "remote": ["firstname", "lastname"], "direction": "both",
         "to_remote": [{"name": "split_name"}], "to_local": [{"name": "join_name"}], "policy": "manual"},
        {"local": "mrr", "remote": "abohub_mrr", "direction": "push",
         "to_remote": [{"name": "minor_to_decimal", "currency": "DKK"}]},
        ...
      ]
    }

- ``key``: one match key or a list of them (email, VAT number, external id), used to link records.
- ``local`` / ``remote``: a field name, or a list of names when one value spans several fields
  (a full name ↔ first and last name). The pipeline then receives / must produce a list, in order.
  ``local`` may be left out of a push field whose pipeline makes the value (``constant``).
- ``direction``: ``push`` (hub → remote), ``pull`` (remote → hub) or ``both``.
- ``to_remote``: required when the field pushes, ``to_local`` when it pulls; ``[]`` is the identity.
  A pipeline for a direction the field does not use is refused (it would be silently ignored).
- ``policy``: what wins when both sides changed the field differently; required for ``both``.
  A one-way field's source always wins (``push`` is ``hub_wins``, ``pull`` is ``remote_wins``);
  stating another policy on it is refused.
- Each remote field belongs to one mapping entry (it has one fingerprint of what was last synced),
  which also means no remote field is written by two entries; no local field is fed by two pulls.

Validation errors name the exact path of each problem (``fields.3.to_remote.0.name``).
"""

from __future__ import annotations

from collections import abc
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from mappings.errors import MappingError, MappingInvalid, flatten
from mappings.transforms import Step


class Direction(StrEnum):
    PUSH = "push"
    PULL = "pull"
    BOTH = "both"


class Policy(StrEnum):
    HUB_WINS = "hub_wins"
    REMOTE_WINS = "remote_wins"
    NEWEST_WINS = "newest_wins"
    MANUAL = "manual"


@dataclass(frozen=True)
class MatchKey:
    local: str
    remote: str


@dataclass(frozen=True)
class FieldMapping:
    """One entry of ``fields``: local field(s) ↔ remote field(s), pipelines, direction and policy."""

    local: tuple[str, ...]
    remote: tuple[str, ...]
    direction: Direction
    to_remote: tuple[Step, ...] = ()
    to_local: tuple[Step, ...] = ()
    policy: Policy = Policy.HUB_WINS

    @cached_property
    def name(self) -> str:
        """The entry's name in plans, conflicts and resolutions: its remote field(s), "+"-joined."""
        return "+".join(self.remote)

    @cached_property
    def local_names(self) -> frozenset[str]:
        return frozenset(self.local)

    @cached_property
    def remote_names(self) -> frozenset[str]:
        return frozenset(self.remote)

    @cached_property
    def pushes(self) -> bool:
        return self.direction in (Direction.PUSH, Direction.BOTH)

    @cached_property
    def pulls(self) -> bool:
        return self.direction in (Direction.PULL, Direction.BOTH)

    def describe(self) -> str:
        arrow = {Direction.PUSH: "→", Direction.PULL: "←", Direction.BOTH: "↔"}[self.direction]
        return f"{'+'.join(self.local) or '(constant)'} {arrow} {self.name}"

    def dump(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.local:
            data["local"] = _names_out(self.local)
        data["remote"] = _names_out(self.remote)
        data["direction"] = self.direction.value
        if self.pushes:
            data["to_remote"] = [one.dump() for one in self.to_remote]
        if self.pulls:
            data["to_local"] = [one.dump() for one in self.to_local]
        data["policy"] = self.policy.value
        return data


@dataclass(frozen=True)
class Mapping:
    """A validated mapping for one connection and object type. Build it with ``Mapping.load``."""

    object_type: str
    remote_object: str
    keys: tuple[MatchKey, ...]
    fields: tuple[FieldMapping, ...]

    @classmethod
    def load(cls, data: abc.Mapping[str, Any]) -> Mapping:
        """Validate a stored mapping document; ``MappingInvalid`` names the exact path of each problem."""
        try:
            mapping: Mapping = _MappingSchema().load(data)
            return mapping
        except ValidationError as error:
            problems = flatten(error.messages)
            raise MappingInvalid(_summary(data, problems), fields=problems) from None

    def dump(self) -> dict[str, Any]:
        """The document to store; ``Mapping.load(m.dump()) == m``."""
        return {
            "object_type": self.object_type,
            "remote_object": self.remote_object,
            "key": [{"local": key.local, "remote": key.remote} for key in self.keys],
            "fields": [one.dump() for one in self.fields],
        }

    def field(self, name: str) -> FieldMapping:
        """The entry called ``name`` (its remote field names, "+"-joined)."""
        for one in self.fields:
            if one.name == name:
                return one
        raise MappingError(f"mapping {self.object_type} ↔ {self.remote_object} has no field {name!r}")

    @cached_property
    def remote_fields(self) -> tuple[str, ...]:
        return tuple(name for one in self.fields for name in one.remote)


def load_mapping(data: abc.Mapping[str, Any]) -> Mapping:
    return Mapping.load(data)


# --- marshmallow ------------------------------------------------------------------------------------------


def _names_out(names: tuple[str, ...]) -> str | list[str]:
    return names[0] if len(names) == 1 else list(names)


class _Names(fields.Field):
    """A field name, or a non-empty list of distinct field names; loads as a tuple."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, ...]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names:
            raise ValidationError("a field name, or a non-empty list of field names")
        if not all(isinstance(name, str) and name.strip() for name in names):
            raise ValidationError("field names must be non-empty text")
        if len(set(names)) != len(names):
            raise ValidationError("a field is named twice")
        return tuple(names)


class _StepField(fields.Field):
    """One transform ``{"name": ..., **params}``; problems are reported under its name or parameter."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Step:
        return Step.load(value)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _KeySchema(_Strict):
    local = fields.String(required=True, validate=validate.Length(min=1))
    remote = fields.String(required=True, validate=validate.Length(min=1))


class _FieldSchema(_Strict):
    local = _Names(load_default=())
    remote = _Names(required=True)
    direction = fields.String(required=True, validate=validate.OneOf([d.value for d in Direction]))
    to_remote = fields.List(_StepField(), load_default=None)
    to_local = fields.List(_StepField(), load_default=None)
    policy = fields.String(load_default=None, validate=validate.OneOf([p.value for p in Policy]))

    @validates_schema
    def _rules(self, data: dict[str, Any], **_kwargs: Any) -> None:
        direction = Direction(data["direction"])
        pushes = direction in (Direction.PUSH, Direction.BOTH)
        pulls = direction in (Direction.PULL, Direction.BOTH)
        errors: dict[str, list[str]] = {}

        def problem(name: str, message: str) -> None:
            errors.setdefault(name, []).append(message)

        local, remote = data["local"], data["remote"]
        if pushes and data["to_remote"] is None:
            problem("to_remote", "required when the field pushes; [] passes the value on unchanged")
        if not pushes and data["to_remote"] is not None:
            problem("to_remote", "a pull field sends nothing to the remote; remove to_remote")
        if pulls and data["to_local"] is None:
            problem("to_local", "required when the field pulls; [] passes the value on unchanged")
        if not pulls and data["to_local"] is not None:
            problem("to_local", "a push field brings nothing back; remove to_local")
        if not local and direction is not Direction.PUSH:
            problem("local", "required (only a push field may leave it out, to send a constant)")
        if not local and pushes and not data["to_remote"]:
            problem("to_remote", "a field without a local field needs a pipeline that makes the value")

        policy = data["policy"]
        if direction is Direction.BOTH and policy is None:
            problem("policy", "required for a two-way field: hub_wins, remote_wins, newest_wins or manual")
        if direction is Direction.PUSH and policy not in (None, Policy.HUB_WINS):
            problem(
                "policy", "a push field always takes the hub's value: leave the policy out or use hub_wins"
            )
        if direction is Direction.PULL and policy not in (None, Policy.REMOTE_WINS):
            problem("policy", "a pull field always takes the remote's value: leave it out or use remote_wins")

        if local and len(local) != len(remote):
            if pushes and data["to_remote"] == []:
                problem(
                    "to_remote",
                    f"an empty pipeline cannot turn {len(local)} local into {len(remote)} remote fields",
                )
            if pulls and data["to_local"] == []:
                problem(
                    "to_local",
                    f"an empty pipeline cannot turn {len(remote)} remote into {len(local)} local fields",
                )
        if errors:
            raise ValidationError(errors)


class _MappingSchema(_Strict):
    object_type = fields.String(required=True, validate=validate.Length(min=1))
    remote_object = fields.String(required=True, validate=validate.Length(min=1))
    key = fields.List(fields.Nested(_KeySchema), required=True, validate=validate.Length(min=1))
    entries = fields.List(
        fields.Nested(_FieldSchema), required=True, validate=validate.Length(min=1), data_key="fields"
    )

    @pre_load
    def _one_key(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, abc.Mapping) and isinstance(data.get("key"), abc.Mapping):
            return {**data, "key": [data["key"]]}
        return data

    @validates_schema
    def _across_fields(self, data: dict[str, Any], **_kwargs: Any) -> None:
        errors: dict[int, dict[str, list[str]]] = {}
        owner: dict[str, int] = {}
        pulled_by: dict[str, int] = {}
        for index, entry in enumerate(data["entries"]):
            for name in entry["remote"]:
                if name in owner:
                    errors.setdefault(index, {}).setdefault("remote", []).append(
                        f"remote field {name!r} is already mapped by fields.{owner[name]} "
                        "(a remote field has one fingerprint, so one mapping)"
                    )
                else:
                    owner[name] = index
            if entry["direction"] in (Direction.PULL, Direction.BOTH):
                for name in entry["local"]:
                    if name in pulled_by:
                        errors.setdefault(index, {}).setdefault("local", []).append(
                            f"local field {name!r} is already fed by the pull of fields.{pulled_by[name]}"
                        )
                    else:
                        pulled_by[name] = index
        problems: dict[str, Any] = {"fields": errors} if errors else {}
        seen: set[tuple[str, str]] = set()
        for index, key in enumerate(data["key"]):
            pair = (key["local"], key["remote"])
            if pair in seen:
                problems.setdefault("key", {})[index] = ["this match key is listed twice"]
            seen.add(pair)
        if problems:
            raise ValidationError(problems)

    @post_load
    def _make(self, data: dict[str, Any], **_kwargs: Any) -> Mapping:
        entries = tuple(
            FieldMapping(
                local=entry["local"],
                remote=entry["remote"],
                direction=Direction(entry["direction"]),
                to_remote=tuple(entry["to_remote"] or ()),
                to_local=tuple(entry["to_local"] or ()),
                policy=_policy(entry),
            )
            for entry in data["entries"]
        )
        keys = tuple(MatchKey(key["local"], key["remote"]) for key in data["key"])
        return Mapping(data["object_type"], data["remote_object"], keys, entries)


def _policy(entry: dict[str, Any]) -> Policy:
    """The stated policy, or the one a one-way field implies: its source side wins."""
    if entry["policy"]:
        return Policy(entry["policy"])
    return Policy.REMOTE_WINS if entry["direction"] == Direction.PULL else Policy.HUB_WINS


# --- error paths --------------------------------------------------------------------------------------------


def _summary(data: Any, problems: dict[str, list[str]]) -> str:
    """One line per problem; a problem inside ``fields.N`` also says which field it is (name ↔ firstname)."""
    lines = []
    entries = data.get("fields") if isinstance(data, abc.Mapping) else None
    for path, messages in problems.items():
        label = path
        parts = path.split(".")
        if len(parts) > 1 and parts[0] == "fields" and parts[1].isdigit() and isinstance(entries, list):
            index = int(parts[1])
            if index < len(entries) and isinstance(entries[index], abc.Mapping):
                entry = entries[index]
                label = f"{path} ({_label(entry.get('local'))} ↔ {_label(entry.get('remote'))})"
        lines.append(f"{label}: {'; '.join(messages)}")
    what = ""
    if isinstance(data, abc.Mapping):
        what = f" {data.get('object_type', '?')} ↔ {data.get('remote_object', '?')}"
    return f"invalid mapping{what}: " + " | ".join(lines)


def _label(names: Any) -> str:
    if isinstance(names, list):
        return "+".join(str(name) for name in names)
    return str(names) if names else "(none)"
