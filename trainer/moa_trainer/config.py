"""Reading command configs (JSON files) with errors that name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, TypeVar

from .errors import TrainerError

T = TypeVar("T")


def read_json_config(path: str | Path) -> tuple[dict[str, Any], str]:
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainerError(f"config file not found: {p}", None) from None
    except IsADirectoryError:
        raise TrainerError(f"config path is a directory: {p}", None) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise TrainerError(f"config file {p} is not valid JSON: {e}", None) from None
    if not isinstance(raw, dict):
        raise TrainerError(f"config file {p} must hold a JSON object", None)
    v = raw.get("v", 1)
    if v != 1:
        raise TrainerError(f"config file {p}: version v={v!r} is not supported (expected 1)",
                           "the trainer is older than the extension; update MoA Studio's trainer")
    return raw, str(p)


class Fields:
    """Typed access to one config object; every failure names `source` and the field."""

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source

    def _get(self, key: str, kind: type[T], default: Optional[T], required: bool) -> T:
        if key not in self.raw or self.raw[key] is None:
            if required:
                raise TrainerError(f"{self.source}: missing required field {key!r}", None)
            return default  # type: ignore[return-value]
        value = self.raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TrainerError(f"{self.source}: field {key!r} must be {kind.__name__}, "
                               f"got {type(value).__name__}", None)
        return value

    def str(self, key: str, default: Optional[str] = None, required: bool = False) -> str:
        return self._get(key, str, default, required)

    def int(self, key: str, default: Optional[int] = None, required: bool = False,
            minimum: Optional[int] = None) -> int:
        v = self._get(key, int, default, required)
        if minimum is not None and v is not None and v < minimum:
            raise TrainerError(f"{self.source}: field {key!r} must be >= {minimum} (got {v})", None)
        return v

    def float(self, key: str, default: Optional[float] = None, required: bool = False,
              minimum: Optional[float] = None) -> float:
        v = self._get(key, float, default, required)
        if minimum is not None and v is not None and v < minimum:
            raise TrainerError(f"{self.source}: field {key!r} must be >= {minimum:g} (got {v})", None)
        return v

    def list(self, key: str, required: bool = False) -> list[Any]:
        return self._get(key, list, [], required)

    def dict(self, key: str, required: bool = False) -> dict[str, Any]:
        return self._get(key, dict, {}, required)
