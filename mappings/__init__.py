"""Field mapping, transforms, change detection and conflict policies.

Pure: the standard library, marshmallow, python-dateutil, babel and ``hub.domain``; no database, no HTTP.

- ``transforms``: the registered transforms and pipelines (``Step``, ``run``, ``invert``).
- ``schema``: the stored mapping document and the ``Mapping`` it loads (``Mapping.load``).
- ``engine``: ``to_remote`` / ``to_local``, ``fingerprint`` and ``plan_record`` (what to push,
  apply, hold and remember for one record).
"""

from mappings.engine import (
    Conflict,
    FieldPlan,
    Outcome,
    Plan,
    Side,
    fingerprint,
    local_match_keys,
    plan_record,
    remote_match_keys,
    to_local,
    to_remote,
)
from mappings.errors import MappingError, MappingInvalid, TransformError
from mappings.schema import Direction, FieldMapping, Mapping, MatchKey, Policy

__all__ = [
    "Conflict",
    "Direction",
    "FieldMapping",
    "FieldPlan",
    "Mapping",
    "MappingError",
    "MappingInvalid",
    "MatchKey",
    "Outcome",
    "Plan",
    "Policy",
    "Side",
    "TransformError",
    "fingerprint",
    "local_match_keys",
    "plan_record",
    "remote_match_keys",
    "to_local",
    "to_remote",
]
