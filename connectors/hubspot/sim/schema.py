"""Object types, property definitions and value validation.

Values are stored as HubSpot stores them: strings. Numbers keep the text the
caller sent, booleans become ``"true"``/``"false"``, datetimes become ISO
strings with milliseconds, dates ``YYYY-MM-DD`` (and must be midnight UTC when
given as milliseconds), enumerations must be one of the options, emails must
look like emails (and are lowercased). An empty string clears a value.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from connectors.hubspot.sim import errors
from connectors.hubspot.sim.clock import is_midnight_utc, iso, iso_date, parse_time, time_of_day

OBJECT_TYPES = ("contacts", "companies", "deals")
TYPE_IDS = {"0-1": "contacts", "0-2": "companies", "0-3": "deals"}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}
LABEL = {"contacts": "CONTACT", "companies": "COMPANY", "deals": "DEAL"}
MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
# Returned when no ``properties`` are asked for (list, read, search).
DEFAULT_RETURNED = {
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "deals": (
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ),
}
SEARCHABLE_TEXT = {
    "contacts": ("firstname", "lastname", "email", "phone", "company"),
    "companies": ("name", "domain", "website", "phone"),
    "deals": ("dealname", "pipeline", "dealstage", "description"),
}
DEAL_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
)
LIFECYCLE = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}
FIELD_TYPES = {
    "text",
    "textarea",
    "number",
    "date",
    "select",
    "radio",
    "checkbox",
    "booleancheckbox",
    "phonenumber",
    "html",
    "file",
    "calculation_equation",
}

# name, label, type, fieldType, group, read-only, options
_Def = tuple[str, str, str, str, str, bool, tuple[str, ...]]
_SYSTEM: tuple[_Def, ...] = (
    ("hs_object_id", "Record ID", "number", "number", "{group}", True, ()),
    ("createdate", "Create Date", "datetime", "date", "{group}", True, ()),
)
_DEFAULTS: dict[str, tuple[_Def, ...]] = {
    "contacts": (
        ("email", "Email", "string", "text", "contactinformation", False, ()),
        ("firstname", "First Name", "string", "text", "contactinformation", False, ()),
        ("lastname", "Last Name", "string", "text", "contactinformation", False, ()),
        ("phone", "Phone Number", "string", "phonenumber", "contactinformation", False, ()),
        ("company", "Company Name", "string", "text", "contactinformation", False, ()),
        ("website", "Website URL", "string", "text", "contactinformation", False, ()),
        ("address", "Street Address", "string", "text", "contactinformation", False, ()),
        ("city", "City", "string", "text", "contactinformation", False, ()),
        ("zip", "Postal Code", "string", "text", "contactinformation", False, ()),
        ("country", "Country/Region", "string", "text", "contactinformation", False, ()),
        ("jobtitle", "Job Title", "string", "text", "contactinformation", False, ()),
        ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation", False, LIFECYCLE),
        ("hubspot_owner_id", "Contact owner", "enumeration", "select", "contactinformation", False, ()),
        ("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", True, ()),
    ),
    "companies": (
        ("name", "Company name", "string", "text", "companyinformation", False, ()),
        ("domain", "Company Domain Name", "string", "text", "companyinformation", False, ()),
        ("phone", "Phone Number", "string", "phonenumber", "companyinformation", False, ()),
        ("website", "Website URL", "string", "text", "companyinformation", False, ()),
        ("address", "Street Address", "string", "text", "companyinformation", False, ()),
        ("city", "City", "string", "text", "companyinformation", False, ()),
        ("zip", "Postal Code", "string", "text", "companyinformation", False, ()),
        ("country", "Country/Region", "string", "text", "companyinformation", False, ()),
        ("industry", "Industry", "string", "text", "companyinformation", False, ()),
        ("description", "Description", "string", "textarea", "companyinformation", False, ()),
        ("numberofemployees", "Number of Employees", "number", "number", "companyinformation", False, ()),
        ("annualrevenue", "Annual Revenue", "number", "number", "companyinformation", False, ()),
        ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "companyinformation", False, LIFECYCLE),
        ("hubspot_owner_id", "Company owner", "enumeration", "select", "companyinformation", False, ()),
        ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "companyinformation", True, ()),
    ),
    "deals": (
        ("dealname", "Deal Name", "string", "text", "dealinformation", False, ()),
        ("amount", "Amount", "number", "number", "dealinformation", False, ()),
        ("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation", False, DEAL_STAGES),
        ("pipeline", "Pipeline", "enumeration", "select", "dealinformation", False, ("default",)),
        ("closedate", "Close Date", "datetime", "date", "dealinformation", False, ()),
        (
            "dealtype",
            "Deal Type",
            "enumeration",
            "radio",
            "dealinformation",
            False,
            ("newbusiness", "existingbusiness"),
        ),
        ("description", "Deal Description", "string", "textarea", "dealinformation", False, ()),
        (
            "deal_currency_code",
            "Currency",
            "enumeration",
            "select",
            "dealinformation",
            False,
            ("DKK", "EUR", "USD"),
        ),
        ("hubspot_owner_id", "Deal owner", "enumeration", "select", "dealinformation", False, ()),
        ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "dealinformation", True, ()),
    ),
}
# Properties whose options live elsewhere in HubSpot (owners): any value accepted.
_EXTERNAL_OPTIONS = {"hubspot_owner_id"}


def _definition(d: _Def, group_default: str, now_ms: int, hubspot_defined: bool) -> dict[str, Any]:
    name, label, type_, field_type, group, read_only, options = d
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "description": "",
        "groupName": group.replace("{group}", group_default),
        "options": [
            {"label": o, "value": o, "displayOrder": i, "hidden": False} for i, o in enumerate(options)
        ],
        "displayOrder": -1,
        "calculated": False,
        "externalOptions": name in _EXTERNAL_OPTIONS,
        "hasUniqueValue": False,
        "hidden": False,
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only,
        },
        "formField": not read_only,
        "createdAt": iso(now_ms),
        "updatedAt": iso(now_ms),
        "archived": False,
    }


class Schema:
    """Property definitions per object type; custom ones can be added over the API."""

    def __init__(self, portal_id: int, now_ms: int) -> None:
        self.portal_id = portal_id
        self._lock = threading.Lock()
        self.properties: dict[str, dict[str, dict[str, Any]]] = {}
        for object_type in OBJECT_TYPES:
            group = _DEFAULTS[object_type][0][4]
            defs = [*_SYSTEM, *_DEFAULTS[object_type]]
            self.properties[object_type] = {d[0]: _definition(d, group, now_ms, True) for d in defs}

    def get(self, object_type: str, name: str) -> dict[str, Any] | None:
        return self.properties[object_type].get(name)

    def all(self, object_type: str) -> list[dict[str, Any]]:
        return list(self.properties[object_type].values())

    def is_unique(self, object_type: str, name: str) -> bool:
        if object_type == "contacts" and name == "email":
            return True
        prop = self.get(object_type, name)
        return bool(prop and prop["hasUniqueValue"])

    def create(self, object_type: str, data: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """A custom property from a ``POST /crm/v3/properties/{objectType}`` body."""
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not data.get(k)]
        if missing:
            raise errors.bad_request(f"Missing required fields: {', '.join(missing)}")
        name = str(data["name"])
        if not NAME.match(name):
            raise errors.bad_request(
                f"Property name '{name}' is invalid: use lowercase letters, digits and _"
            )
        if data["type"] not in TYPES:
            raise errors.bad_request(f"Unknown property type '{data['type']}'; one of {sorted(TYPES)}")
        if data["fieldType"] not in FIELD_TYPES:
            raise errors.bad_request(f"Unknown fieldType '{data['fieldType']}'")
        options = data.get("options") or []
        if data["type"] == "enumeration" and not options and data["fieldType"] != "booleancheckbox":
            raise errors.bad_request("Enumeration properties need at least one option")
        with self._lock:
            if name in self.properties[object_type]:
                raise errors.ApiError(
                    409,
                    errors.body(f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS"),
                )
            definition = _definition(
                (
                    name,
                    str(data["label"]),
                    data["type"],
                    data["fieldType"],
                    str(data["groupName"]),
                    False,
                    (),
                ),
                "",
                now_ms,
                False,
            )
            definition["description"] = str(data.get("description") or "")
            definition["options"] = [
                {
                    "label": str(o.get("label", o.get("value"))),
                    "value": str(o.get("value")),
                    "displayOrder": int(o.get("displayOrder", i)),
                    "hidden": bool(o.get("hidden", False)),
                }
                for i, o in enumerate(options)
            ]
            definition["hasUniqueValue"] = bool(data.get("hasUniqueValue", False))
            definition["hidden"] = bool(data.get("hidden", False))
            definition["formField"] = bool(data.get("formField", False))
            definition.pop("hubspotDefined")
            self.properties[object_type][name] = definition
            return definition

    def normalize(self, object_type: str, props: object, *, system: bool = False) -> dict[str, str | None]:
        """Validated, stored forms of the given values (``None`` clears). Raises
        :class:`errors.PropertyErrors` naming every bad property at once."""
        if not isinstance(props, dict):
            raise errors.bad_request("properties must be an object of property names to values")
        out: dict[str, str | None] = {}
        problems: list[dict[str, Any]] = []
        for name, raw in props.items():
            prop = self.get(object_type, str(name))
            if prop is None:
                problems.append(
                    self._problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                )
                continue
            if prop["modificationMetadata"]["readOnlyValue"] and not system:
                problems.append(
                    self._problem(
                        name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'
                    )
                )
                continue
            try:
                out[name] = self._value(object_type, prop, raw)
            except ValueError as exc:
                code, message = exc.args
                problems.append(self._problem(name, code, message))
        if problems:
            raise errors.PropertyErrors(problems)
        return out

    def _problem(self, name: str, code: str, message: str) -> dict[str, Any]:
        return errors.validation_result(name, code, message, self.portal_id)

    def _value(self, object_type: str, prop: dict[str, Any], raw: object) -> str | None:
        if raw is None or raw == "":
            return None
        if isinstance(raw, dict | list):
            raise ValueError("INVALID_PROPERTY_VALUE", f"{raw!r} is not a valid value for {prop['name']}")
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        name, kind = prop["name"], prop["type"]
        if object_type == "contacts" and name == "email":
            text = text.strip().lower()
            if not EMAIL.match(text):
                raise ValueError("INVALID_EMAIL", f"Email address {raw} is invalid")
            return text
        if kind == "number":
            try:
                float(text)
            except ValueError:
                raise ValueError("INVALID_NUMBER", f"{text} was not a valid number.") from None
            return text
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError("INVALID_BOOLEAN", f"{text} was not a valid boolean.")
            return text.lower()
        if kind in ("date", "datetime"):
            ms = parse_time(raw)
            if ms is None:
                raise ValueError("INVALID_DATE", f"{text} was not a valid date or datetime.")
            if kind == "date":
                if not is_midnight_utc(ms):
                    raise ValueError("INVALID_DATE", f"{text} is at {time_of_day(ms)} UTC, not midnight!")
                return iso_date(ms)
            return iso(ms)
        if kind == "enumeration" and not prop["externalOptions"]:
            allowed = [o["value"] for o in prop["options"]]
            if prop["fieldType"] == "booleancheckbox" and not allowed:
                allowed = ["true", "false"]
            chosen = text.split(";") if prop["fieldType"] == "checkbox" else [text]
            for value in chosen:
                if value not in allowed:
                    raise ValueError(
                        "INVALID_OPTION",
                        f"{value} was not one of the allowed options: [{', '.join(allowed)}]",
                    )
        return text

    def sort_key(self, object_type: str, name: str, value: str | None) -> tuple[int, Any]:
        """Orders values the way their type does (numbers and times numerically)."""
        if value is None:
            return (1, 0)
        prop = self.get(object_type, name)
        kind = prop["type"] if prop else "string"
        if kind in ("number",):
            try:
                return (0, float(value))
            except ValueError:
                return (0, 0.0)
        if kind in ("date", "datetime"):
            return (0, parse_time(value) or 0)
        return (0, value.lower())
