"""The trainer's events checked against schemas/trainer-events.schema.json: the one declaration of
every event and field, which the TypeScript parser is held to as well. A small validator for the
subset of JSON Schema that file uses (type, const, enum, required, properties,
additionalProperties, items), so no extra package is needed."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "trainer-events.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
EVENT_TYPES: list[str] = SCHEMA["properties"]["type"]["enum"]

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _check(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {value!r}, expected {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in allowed):
            return [f"{where}: {type(value).__name__} {value!r:.60}, expected {' or '.join(allowed)}"]
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing required field {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, v in value.items():
            if key in props:
                problems += _check(v, props[key], f"{where}.{key}")
            elif extra is False:
                problems.append(f"{where}: field {key!r} is not declared in {SCHEMA_PATH.name}")
            elif isinstance(extra, dict):
                problems += _check(v, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            problems += _check(v, schema["items"], f"{where}[{i}]")
    return problems


def event_problems(event: Any) -> list[str]:
    """Why `event` breaks the contract (empty when it keeps it)."""
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return [f"not an event of a declared type: {json.dumps(event)[:120]}"]
    return _check(event, SCHEMA["$defs"][event["type"]], event["type"])
