"""Shared pieces of request parsing: the error about one field, and the checks every parser
uses (objects, known keys, numbers in range)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import RequestError

__all__ = ["check_keys", "expect_mapping", "invalid", "parse_number"]

_FIELD = re.compile(r"[a-z_]+(?=$|[.\[])")


def invalid(code: str, message: str, at: str | None = None) -> RequestError:
    """A request error about the field at path ``at`` (``messages[2].content``): its top-level
    name is the error's ``param``."""
    match = _FIELD.match(at) if at else None
    return RequestError(message, code=code, param=match.group(0) if match else None)


def expect_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid("invalid_request", f"{where} must be a JSON object", where)
    return value


def check_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(k for k in obj if k not in allowed)
    if unknown:
        at = unknown[0] if where == "the request body" else where
        raise invalid("unknown_field", f"unknown field {unknown[0]!r} in {where}", at)


def parse_number(
    value: Any, key: str, *, low: float, high: float, integer: bool = False
) -> float | int | None:
    if value is None:
        return None
    # bool is an int in Python; a client sending true for temperature is a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid("invalid_parameter", f"{key!r} must be a number", key)
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise invalid("invalid_parameter", f"{key!r} must be an integer", key)
    if not math.isfinite(value) or not low <= value <= high:
        raise invalid(
            "invalid_parameter", f"{key!r} must be between {_num(low)} and {_num(high)}", key
        )
    return int(value) if integer else float(value)


def _num(value: float) -> str:
    # 10_000_000, not 1e+07: people read these limits.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
