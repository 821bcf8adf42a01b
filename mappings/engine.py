"""Applying a mapping, fingerprints, and change detection for one record.

Where the comparison happens
----------------------------
Every mapped field is compared in the **remote form**, one fingerprint per remote field:

- the hub side is ``to_remote(hub value)``: exactly what a push would send;
- the remote side of a two-way field is *canonicalised* through the mapping,
  ``to_remote(to_local(remote value))``: what the remote value means in the hub, said the way the hub
  would say it. So a vendor that stores "123.4" for a pushed "123.40", or an e-mail typed in
  capitals against a ``lower`` mapping, does not look like a change and cannot cause a ping-pong.
  (It requires ``to_local`` then ``to_remote`` to reproduce what the hub would send for the same
  meaning, which every inverse pair in ``transforms`` does.)
- a one-way field watches only its source side: a push field compares ``to_remote(hub value)`` with
  the fingerprint, a pull field the remote value as fetched. The destination side is never compared,
  so a vendor that normalises what it receives cannot make a one-way field loop either; drift on the
  destination is repaired by reconcile (a plan with no fingerprints), not by every sync.

The link stores, per remote field, the fingerprint of the value both sides agreed on at the last
successful sync (``Plan.fingerprints``). After a push that is what was sent; after a pull it is the
canonical form of what was received, which is also what the hub now holds in remote form. Echo
suppression follows: a pushed value coming back by webhook or poll equals its fingerprint, so the
field is ``unchanged`` and nothing is applied or pushed again.

Absent is not empty
-------------------
A field missing from ``local_values`` / ``remote_values`` is *not known* (a partial webhook payload,
or a push job that did not fetch the remote record): that side is not compared. ``None`` and ``""``
are known and mean "no value"; they have the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import abc
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from mappings.errors import TransformError
from mappings.schema import Direction, FieldMapping, Mapping, Policy
from mappings.transforms import Step, run

Values = abc.Mapping[str, Any]


# --- fingerprints ---------------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """A JSON value that is the same for values that mean the same (see ``fingerprint``)."""
    if value is None or value == "":
        return None
    if isinstance(value, Enum):
        return _canonical(value.value)
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _canonical(Decimal(repr(value)))
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        text = format(value.copy_abs() if value.is_zero() else value, "f")
        return text
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_canonical(one) for one in value]
    if isinstance(value, abc.Mapping):
        return {str(key): _canonical(one) for key, one in value.items()}
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def fingerprint(value: Any) -> str:
    """A stable 16-hex-digit hash of a normalised value.

    Normalisation (so values that mean the same compare equal):

    - ``None`` and ``""`` are the same: "no value" (HubSpot answers "" or null for a cleared property).
    - Numbers and booleans are hashed as the text a vendor would carry: ``12345`` == ``"12345"``,
      ``Decimal("123.45")`` == ``"123.45"``, ``True`` == ``"true"``. A Decimal keeps its scale
      (``Decimal("123.40")`` is ``"123.40"``, not ``"123.4"``); text is never parsed as a number
      ("0800" is a postcode, not 800). ``-0`` is ``0``.
    - Text is Unicode-NFC normalised (a composed and a decomposed "é" are the same) and otherwise
      exact: whitespace and case are the mapping's business (``trim``, ``lower``).
    - An aware datetime is taken in UTC (the same instant in two zones is the same); dates and times
      by their ISO text; enums by their value; lists in order; dicts by key.
    """
    encoded = _ENCODER.encode(_canonical(value))
    return hashlib.blake2b(encoded.encode(), digest_size=8).hexdigest()


EMPTY = fingerprint(None)


# --- applying a mapping -------------------------------------------------------------------------------------


def _spread(
    fm: FieldMapping, out: Any, targets: tuple[str, ...], steps: tuple[Step, ...], direction: str
) -> dict[str, Any]:
    if len(targets) == 1:
        return {targets[0]: out}
    if out is None:
        return dict.fromkeys(targets)
    if isinstance(out, list | tuple) and len(out) == len(targets):
        return dict(zip(targets, out, strict=True))
    count = f"{len(out)} values" if isinstance(out, list | tuple) else "one value"
    raise TransformError(
        f"the pipeline made {count} for the {len(targets)} fields {', '.join(targets)}",
        transform=steps[-1].name if steps else "(identity)",
        value=out,
        field=fm.describe(),
        direction=direction,
    )


def _gather(names: tuple[str, ...], values: Values) -> Any:
    if not names:
        return None
    if len(names) == 1:
        return values[names[0]]
    return [values[name] for name in names]


def field_to_remote(fm: FieldMapping, local_values: Values) -> dict[str, Any]:
    """One entry's remote field(s) from the hub's values (all of ``fm.local`` must be present)."""
    value = _gather(fm.local, local_values)
    try:
        out = run(fm.to_remote, value)
    except TransformError as error:
        raise error.located(fm.describe(), "to_remote") from error.__cause__
    return _spread(fm, out, fm.remote, fm.to_remote, "to_remote")


def field_to_local(fm: FieldMapping, remote_values: Values) -> dict[str, Any]:
    """One entry's local field(s) from the remote's values (all of ``fm.remote`` must be present)."""
    value = _gather(fm.remote, remote_values)
    try:
        out = run(fm.to_local, value)
    except TransformError as error:
        raise error.located(fm.describe(), "to_local") from error.__cause__
    return _spread(fm, out, fm.local, fm.to_local, "to_local")


def _has(names: frozenset[str], values: Values | None) -> bool:
    """Whether every one of ``names`` is given (a set comparison: this runs per field and record)."""
    return values is not None and values.keys() >= names


def to_remote(mapping: Mapping, local_values: Values) -> dict[str, Any]:
    """The remote properties for the hub's values: every pushing field whose local fields are given."""
    out: dict[str, Any] = {}
    for fm in mapping.fields:
        if fm.pushes and _has(fm.local_names, local_values):
            out.update(field_to_remote(fm, local_values))
    return out


def to_local(mapping: Mapping, remote_values: Values) -> dict[str, Any]:
    """The local field values for the remote's values: every pulling field whose remote fields are given."""
    out: dict[str, Any] = {}
    for fm in mapping.fields:
        if fm.pulls and _has(fm.remote_names, remote_values):
            out.update(field_to_local(fm, remote_values))
    return out


# --- the plan -----------------------------------------------------------------------------------------------


class Outcome(StrEnum):
    UNCHANGED = "unchanged"
    PUSH = "push"  # the hub changed (or, on a first sync, the hub's value is sent)
    PULL = "pull"  # the remote changed (or, on a first sync, the remote's value is taken)
    CONFLICT_RESOLVED = "conflict_resolved"  # both changed differently; the policy (or a person) chose
    CONFLICT_MANUAL = "conflict_manual"  # both changed differently under ``manual``: held
    CONVERGED = "converged"  # both changed, to the same value
    FAILED = "failed"  # a transform failed on this field's value; the other fields still sync


class Side(StrEnum):
    HUB = "hub"
    REMOTE = "remote"


@dataclass(frozen=True)
class FieldPlan:
    """What to do with one mapping entry, and why."""

    field: str
    outcome: Outcome
    reason: str
    winner: Side | None = None
    push: dict[str, Any] = field(default_factory=dict)  # remote field → value to send
    apply: dict[str, Any] = field(default_factory=dict)  # local field → value to set
    hub: dict[str, Any] = field(default_factory=dict)  # the hub's value in remote form, when known
    remote: dict[str, Any] = field(default_factory=dict)  # the remote's value in (canonical) remote form
    error: TransformError | None = None


@dataclass(frozen=True)
class Conflict:
    """Both sides changed a ``manual`` field differently: held for a person, with both values.

    ``hub_value`` / ``remote_value`` are in local form (what the hub holds, what taking the remote's
    value would set); ``hub_remote_form`` / ``remote_remote_form`` in remote form (what a push would
    send, and the remote's value in the canonical form it is compared in). ``fingerprints`` are the
    last-synced ones (empty on a first sync). To resolve, plan again with
    ``resolutions={conflict.field: "hub" | "remote"}``: the chosen value then syncs both ways.
    """

    field: str
    local_fields: tuple[str, ...]
    remote_fields: tuple[str, ...]
    hub_value: dict[str, Any]
    remote_value: dict[str, Any]
    hub_remote_form: dict[str, Any]
    remote_remote_form: dict[str, Any]
    fingerprints: dict[str, str]
    hub_changed_at: datetime | None
    remote_changed_at: datetime | None
    reason: str


@dataclass(frozen=True)
class Plan:
    """Everything a sync job needs for one record.

    - ``push``: remote properties to send (only changed fields); ``apply``: local fields to set (only
      changed fields); ``conflicts``: to store, held for a person.
    - ``fingerprints``: the link's fingerprints to store **after** the push and apply succeeded (the
      whole dict for the mapped remote fields; a held or failed field keeps its old fingerprint).
    - ``errors``: fields whose transform failed; they are left out, the other fields still sync.
    """

    fields: tuple[FieldPlan, ...]
    push: dict[str, Any]
    apply: dict[str, Any]
    conflicts: tuple[Conflict, ...]
    fingerprints: dict[str, str]
    previous_fingerprints: dict[str, str]
    errors: tuple[TransformError, ...]

    @property
    def nothing_to_do(self) -> bool:
        """Nothing to push, apply or hold (see ``fingerprints_changed`` for storing new fingerprints)."""
        return not self.push and not self.apply and not self.conflicts

    @property
    def fingerprints_changed(self) -> bool:
        return self.fingerprints != self.previous_fingerprints

    def field(self, name: str) -> FieldPlan:
        for one in self.fields:
            if one.field == name:
                return one
        raise KeyError(name)

    def outcomes(self) -> dict[str, Outcome]:
        return {one.field: one.outcome for one in self.fields}


@dataclass(frozen=True)
class _Times:
    hub: datetime | None
    remote: datetime | None


def _check_aware(name: str, moment: datetime | None) -> None:
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware")


def plan_record(
    mapping: Mapping,
    local_values: Values,
    remote_values: Values | None,
    fingerprints: abc.Mapping[str, str] | None = None,
    *,
    hub_changed_at: datetime | None = None,
    remote_changed_at: datetime | None = None,
    resolutions: abc.Mapping[str, Side | str] | None = None,
) -> Plan:
    """Decide, field by field, what to push, what to apply, what to hold and what to remember.

    ``local_values``: the hub record's field values (local names, local form).
    ``remote_values``: the remote record's properties as fetched, or ``None`` when not fetched (then
    only the hub side is compared; pass them whenever the remote record exists, or changes made there
    to fields with a conflict policy cannot be seen).
    ``fingerprints``: the link's fingerprints per remote field; empty or ``None`` for a first sync.
    ``hub_changed_at`` / ``remote_changed_at``: when each side last changed (aware), for ``newest_wins``.
    ``resolutions``: a person's choice per field name (``"hub"`` or ``"remote"``) for a field whose
    sides differ; it overrides the field's policy.
    """
    _check_aware("hub_changed_at", hub_changed_at)
    _check_aware("remote_changed_at", remote_changed_at)
    previous = dict(fingerprints or {})
    chosen = {name: Side(side) for name, side in (resolutions or {}).items()}
    for name in chosen:
        mapping.field(name)  # an unknown field name is an error, not silently ignored
    times = _Times(hub_changed_at, remote_changed_at)

    plans: list[FieldPlan] = []
    push: dict[str, Any] = {}
    apply: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    errors: list[TransformError] = []
    stored = {name: previous[name] for name in mapping.remote_fields if name in previous}
    for fm in mapping.fields:
        one = _Field(fm, local_values, remote_values, previous, times, chosen.get(fm.name))
        try:
            result = one.decide()
        except TransformError as error:
            result = FieldPlan(fm.name, Outcome.FAILED, str(error), error=error)
            errors.append(error)
        plans.append(result)
        push.update(result.push)
        apply.update(result.apply)
        if one.conflict is not None:
            conflicts.append(one.conflict)
        stored.update(one.new_fingerprints)
    return Plan(tuple(plans), push, apply, tuple(conflicts), stored, previous, tuple(errors))


class _Field:
    """The decision for one mapping entry (see the module docstring for the rules)."""

    __slots__ = (
        "conflict",
        "first_sync",
        "fm",
        "hub",
        "hub_known",
        "incoming",
        "last",
        "local_values",
        "new_fingerprints",
        "remote",
        "remote_known",
        "remote_raw",
        "resolution",
        "times",
    )

    def __init__(
        self,
        fm: FieldMapping,
        local_values: Values,
        remote_values: Values | None,
        previous: dict[str, str],
        times: _Times,
        resolution: Side | None,
    ) -> None:
        self.fm = fm
        self.local_values = local_values
        self.times = times
        self.resolution = resolution
        self.hub_known = _has(fm.local_names, local_values)
        self.remote_known = _has(fm.remote_names, remote_values)
        self.remote_raw = {name: remote_values[name] for name in fm.remote} if self.remote_known else {}
        self.last = {name: previous[name] for name in fm.remote if name in previous}
        self.first_sync = len(self.last) != len(fm.remote)
        self.new_fingerprints: dict[str, str] = {}
        self.conflict: Conflict | None = None
        # Filled by decide(): the hub's value in remote form, the remote's in canonical remote form,
        # and the remote's value in local form (what pulling would set).
        self.hub: dict[str, Any] = {}
        self.remote: dict[str, Any] = {}
        self.incoming: dict[str, Any] = {}

    # -- the sides ----------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        fm = self.fm
        if self.hub_known and fm.pushes:
            self.hub = field_to_remote(fm, self.local_values)
        if self.remote_known:
            if fm.pulls:
                self.incoming = field_to_local(fm, self.remote_raw)
            if fm.direction is Direction.BOTH:
                self.remote = field_to_remote(fm, self.incoming)
            else:
                self.remote = dict(self.remote_raw)

    @staticmethod
    def _prints(values: dict[str, Any]) -> dict[str, str]:
        return {name: fingerprint(value) for name, value in values.items()}

    @staticmethod
    def _empty(prints: dict[str, str]) -> bool:
        return all(one == EMPTY for one in prints.values())

    def _differing(self, values: dict[str, Any], prints: dict[str, str], against: dict[str, str]) -> dict:
        return {name: values[name] for name in values if prints[name] != against.get(name)}

    def _local_changes(self) -> dict[str, Any]:
        """The pulled local values that differ from what the hub holds (all of them if the hub is unknown)."""
        return {
            name: value
            for name, value in self.incoming.items()
            if name not in self.local_values or fingerprint(value) != fingerprint(self.local_values[name])
        }

    # -- outcomes ------------------------------------------------------------------------------------------

    def _result(self, outcome: Outcome, reason: str, **kwargs: Any) -> FieldPlan:
        return FieldPlan(self.fm.name, outcome, reason, hub=self.hub, remote=self.remote, **kwargs)

    def _push(self, values: dict[str, Any], reason: str, *, winner: Side | None = None) -> FieldPlan:
        self.new_fingerprints = self._prints(self.hub)
        outcome = Outcome.CONFLICT_RESOLVED if winner else Outcome.PUSH
        return self._result(outcome, reason, winner=winner, push=values)

    def _pull(self, reason: str, *, winner: Side | None = None) -> FieldPlan:
        self.new_fingerprints = self._prints(self.remote)
        changes = self._local_changes()
        if winner:
            return self._result(Outcome.CONFLICT_RESOLVED, reason, winner=winner, apply=changes)
        if not changes:
            return self._result(Outcome.CONVERGED, f"{reason}, and the hub already has that value")
        return self._result(Outcome.PULL, reason, apply=changes)

    def _unchanged(self, reason: str, prints: dict[str, str] | None = None) -> FieldPlan:
        if prints is not None:
            self.new_fingerprints = prints
        return self._result(Outcome.UNCHANGED, reason)

    def decide(self) -> FieldPlan:
        self._prepare()
        if self.fm.direction is Direction.PUSH:
            return self._push_only()
        if self.fm.direction is Direction.PULL:
            return self._pull_only()
        return self._first_sync_both() if self.first_sync else self._both()

    def _push_only(self) -> FieldPlan:
        if not self.hub_known:
            return self._unchanged("the hub's value is not given")
        hub = self._prints(self.hub)
        if not self.first_sync:
            if hub == self.last:
                return self._unchanged("the hub has not changed")
            return self._push(self._differing(self.hub, hub, self.last), "the hub changed")
        if self.remote_known and hub == self._prints(self.remote):
            return self._unchanged("first sync: both sides agree", hub)
        if self._empty(hub):
            return self._unchanged("first sync: the hub has no value, the remote's is left alone")
        if self.remote_known:
            values = self._differing(self.hub, hub, self._prints(self.remote))
            return self._push(values, "first sync: a push field takes the hub's value")
        return self._push(dict(self.hub), "first sync: the hub's value is sent")

    def _pull_only(self) -> FieldPlan:
        if not self.remote_known:
            return self._unchanged("the remote's value is not given")
        remote = self._prints(self.remote)
        if not self.first_sync:
            if remote == self.last:
                return self._unchanged("the remote has not changed")
            return self._pull("the remote changed")
        if self.hub_known and not self._local_changes():
            return self._unchanged("first sync: both sides agree", remote)
        if self._empty(remote):
            return self._unchanged("first sync: the remote has no value, the hub's is left alone")
        return self._pull("first sync: a pull field takes the remote's value")

    def _both(self) -> FieldPlan:
        hub = self._prints(self.hub) if self.hub_known else None
        remote = self._prints(self.remote) if self.remote_known else None
        hub_changed = hub is not None and hub != self.last
        # The remote still holding exactly what was last sent has not changed, even when its value reads
        # differently now: after the field's transforms were edited, the old form maps to a new one.
        remote_changed = remote not in (None, self.last) and self._prints(self.remote_raw) != self.last
        if not hub_changed and not remote_changed:
            return self._unchanged("neither side changed")
        if hub_changed and not remote_changed:
            assert hub is not None
            return self._push(self._differing(self.hub, hub, self.last), "the hub changed")
        if remote_changed and not hub_changed:
            return self._pull("the remote changed")
        assert hub is not None and remote is not None
        if hub == remote:
            self.new_fingerprints = hub
            return self._result(Outcome.CONVERGED, "both sides changed to the same value")
        return self._conflict(hub, remote, "both sides changed it differently")

    def _first_sync_both(self) -> FieldPlan:
        hub = self._prints(self.hub) if self.hub_known else None
        remote = self._prints(self.remote) if self.remote_known else None
        if hub is not None and remote is not None:
            if hub == remote:
                return self._unchanged("first sync: both sides agree", hub)
            if self._empty(remote):
                values = self._differing(self.hub, hub, remote)
                return self._push(values, "first sync: the remote has no value")
            if self._empty(hub):
                return self._pull("first sync: the hub has no value")
            return self._conflict(hub, remote, "first sync: the two sides hold different values")
        if hub is not None:
            if self._empty(hub):
                return self._unchanged("first sync: the hub has no value and the remote's is not known")
            return self._push(
                dict(self.hub), "first sync: the remote's value is not known, the hub's is sent"
            )
        if remote is not None:
            if self._empty(remote):
                return self._unchanged("first sync: the remote has no value and the hub's is not known")
            return self._pull("first sync: the hub's value is not known; the remote's is taken")
        return self._unchanged("neither side's value is given")

    def _conflict(self, hub: dict[str, str], remote: dict[str, str], why: str) -> FieldPlan:
        winner, reason = self._winner(why)
        if winner is Side.HUB:
            return self._push(self._differing(self.hub, hub, remote), reason, winner=Side.HUB)
        if winner is Side.REMOTE:
            return self._pull(reason, winner=Side.REMOTE)
        self.conflict = Conflict(
            field=self.fm.name,
            local_fields=self.fm.local,
            remote_fields=self.fm.remote,
            hub_value={name: self.local_values[name] for name in self.fm.local},
            remote_value=dict(self.incoming),
            hub_remote_form=dict(self.hub),
            remote_remote_form=dict(self.remote),
            fingerprints=dict(self.last),
            hub_changed_at=self.times.hub,
            remote_changed_at=self.times.remote,
            reason=reason,
        )
        return self._result(Outcome.CONFLICT_MANUAL, reason)

    def _winner(self, why: str) -> tuple[Side | None, str]:
        if self.resolution is not None:
            return self.resolution, f"{why}; resolved by a person: the {self.resolution} value"
        policy = self.fm.policy
        if policy is Policy.HUB_WINS:
            return Side.HUB, f"{why}; hub_wins"
        if policy is Policy.REMOTE_WINS:
            return Side.REMOTE, f"{why}; remote_wins"
        if policy is Policy.MANUAL:
            return None, f"{why}; manual: held for a person"
        hub_at, remote_at = self.times.hub, self.times.remote
        if hub_at is None or remote_at is None:
            return Side.HUB, f"{why}; newest_wins without both change times: the hub wins"
        if remote_at > hub_at:
            return Side.REMOTE, f"{why}; newest_wins: the remote changed later"
        if hub_at > remote_at:
            return Side.HUB, f"{why}; newest_wins: the hub changed later"
        return Side.HUB, f"{why}; newest_wins: changed at the same instant, ties go to the hub"


# --- match keys ---------------------------------------------------------------------------------------------


def _key_entry(mapping: Mapping, local: str, remote: str) -> FieldMapping | None:
    for fm in mapping.fields:
        if fm.local == (local,) and fm.remote == (remote,):
            return fm
    return None


def local_match_keys(mapping: Mapping, local_values: Values) -> dict[str, str]:
    """The fingerprints of the hub record's match keys, in remote form, by remote key field.

    A key whose local and remote fields are also a pushing mapping entry goes through its ``to_remote``
    pipeline (so "Ada@Example.com " matches "ada@example.com"). Empty keys never match and are left out,
    and so is a key whose transform fails on this record.
    """
    keys: dict[str, str] = {}
    for key in mapping.keys:
        if key.local not in local_values:
            continue
        fm = _key_entry(mapping, key.local, key.remote)
        try:
            if fm is not None and fm.pushes:
                value = field_to_remote(fm, local_values)[key.remote]
            else:
                value = local_values[key.local]
        except TransformError:
            continue
        if fingerprint(value) != EMPTY:
            keys[key.remote] = fingerprint(value)
    return keys


def remote_match_keys(mapping: Mapping, remote_values: Values) -> dict[str, str]:
    """The fingerprints of a remote record's match keys, comparable with ``local_match_keys``.

    A key that is a two-way mapping entry is canonicalised like any two-way field
    (``to_remote(to_local(value))``); other keys are compared as fetched.
    """
    keys: dict[str, str] = {}
    for key in mapping.keys:
        if key.remote not in remote_values:
            continue
        fm = _key_entry(mapping, key.local, key.remote)
        try:
            if fm is not None and fm.direction is Direction.BOTH:
                value = field_to_remote(fm, field_to_local(fm, remote_values))[key.remote]
            else:
                value = remote_values[key.remote]
        except TransformError:
            continue
        if fingerprint(value) != EMPTY:
            keys[key.remote] = fingerprint(value)
    return keys
