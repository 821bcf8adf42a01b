"""The errors of the mapping engine, rooted in the domain's ``AbohubError``."""

from __future__ import annotations

from typing import Any

from hub.domain.errors import AbohubError, InvalidRequest

_MAX_VALUE_REPR = 80


def show(value: Any) -> str:
    """A short ``repr`` for messages: values can be long (never secrets: mappings carry no credentials)."""
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_REPR else text[: _MAX_VALUE_REPR - 1] + "…"


class MappingError(AbohubError):
    """Root of the mapping engine's errors."""

    code = "mapping_error"


class MappingInvalid(MappingError, InvalidRequest):
    """A mapping document does not validate.

    ``fields`` maps the exact path of each problem (``fields.3.to_remote.0.name``) to its messages,
    the same shape the API uses for request errors, so the API answers 422 with it as is.
    """

    code = "invalid_mapping"


class TransformError(MappingError):
    """A transform could not convert a value. Says which field, which transform and which value."""

    code = "transform_failed"

    def __init__(
        self,
        reason: str,
        *,
        transform: str,
        value: Any,
        field: str | None = None,
        direction: str | None = None,
    ) -> None:
        where = ""
        if field:
            where = f"field {field} ({direction}): " if direction else f"field {field}: "
        super().__init__(f"{where}transform {transform!r} failed on {show(value)}: {reason}")
        self.reason = reason
        self.transform = transform
        self.value = value
        self.field = field
        self.direction = direction

    def located(self, field: str, direction: str) -> TransformError:
        """The same error, told which field and direction it happened in."""
        error = TransformError(
            self.reason, transform=self.transform, value=self.value, field=field, direction=direction
        )
        error.__cause__ = self.__cause__
        return error


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages → ``{"fields.3.to_remote.0.name": ["unknown transform …"]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, inner in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            for name, found in flatten(inner, path).items():
                flat.setdefault(name, []).extend(found)
    elif isinstance(messages, list) and all(isinstance(one, str) for one in messages):
        flat.setdefault(prefix or "_schema", []).extend(messages)
    elif isinstance(messages, list):
        for index, inner in enumerate(messages):
            for name, found in flatten(inner, f"{prefix}.{index}" if prefix else str(index)).items():
                flat.setdefault(name, []).extend(found)
    else:
        flat.setdefault(prefix or "_schema", []).append(str(messages))
    return flat
