"""Beyond plain text in a request: content parts (text and images), structured output and
reasoning, with their parsers (OpenAI's ``image_url`` parts, ``response_format`` and
``reasoning_effort``; Anthropic's ``thinking``). :mod:`.request` re-exports all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .request_fields import check_keys as _check_keys
from .request_fields import expect_mapping as _expect_mapping
from .request_fields import invalid, parse_number

__all__ = [
    "ContentPart",
    "ImagePart",
    "Reasoning",
    "ResponseFormat",
    "TextPart",
    "data_uri_bytes",
    "image_part",
    "json_schema_format",
    "parse_image_url",
    "parse_parts",
    "parse_reasoning_effort",
    "parse_response_format",
    "parse_thinking",
]


@dataclass(frozen=True, slots=True)
class TextPart:
    """A run of text inside a message made of parts."""

    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image in a message: an ``https`` URL or a ``data:`` URI. The mount never fetches a
    URL itself; it hands it to the upstream in the upstream's own form."""

    url: str
    #: From the ``data:`` URI (``image/png``, ...), when known.
    media_type: str | None = None
    #: OpenAI's ``"auto"`` | ``"low"`` | ``"high"``.
    detail: str | None = None


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output: any JSON object, or one matching ``schema`` (OpenAI's
    ``response_format`` / Responses' ``text.format``)."""

    type: Literal["json_object", "json_schema"]
    schema: Mapping[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class Reasoning:
    """How hard the model should think, in whichever form the upstream takes."""

    #: ``"none"`` | ``"minimal"`` | ``"low"`` | ``"medium"`` | ``"high"`` | ``"xhigh"`` | ``"max"``.
    effort: str | None = None
    #: Anthropic's thinking budget, in tokens.
    budget_tokens: int | None = None


def parse_parts(value: Any, where: str) -> tuple[str, tuple[ContentPart, ...]]:
    """OpenAI content → ``(joined text, parts)``: a string, ``null`` (assistant turns that only
    call tools), or a list of ``text`` and ``image_url`` parts. ``parts`` is ``()`` unless the
    list holds an image, so text-only messages look exactly as before to every provider."""
    if value is None:
        return "", ()
    if isinstance(value, str):
        return value, ()
    if isinstance(value, list):
        parts: list[ContentPart] = []
        for i, raw in enumerate(value):
            part = _expect_mapping(raw, f"{where}[{i}]")
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append(TextPart(part["text"]))
            elif kind == "image_url":
                parts.append(parse_image_url(part.get("image_url"), f"{where}[{i}].image_url"))
            else:
                raise invalid(
                    "unsupported_content",
                    f"{where}[{i}]: only text and image_url parts are supported "
                    f"(got type {kind!r})",
                    where,
                )
        text = "".join(p.text for p in parts if isinstance(p, TextPart))
        has_image = any(isinstance(p, ImagePart) for p in parts)
        return text, (tuple(parts) if has_image else ())
    raise invalid("invalid_request", f"{where} must be a string or a list of content parts", where)


_DETAILS = frozenset(("auto", "low", "high"))


def parse_image_url(value: Any, where: str) -> ImagePart:
    """OpenAI's ``image_url`` object ``{"url", "detail"?}`` (a bare string is accepted too,
    as several clients send it)."""
    if isinstance(value, str):
        value = {"url": value}
    obj = _expect_mapping(value, where)
    _check_keys(obj, frozenset(("url", "detail")), where)
    detail = obj.get("detail")
    if detail is not None and (not isinstance(detail, str) or detail not in _DETAILS):
        raise invalid(
            "invalid_parameter", f"{where}.detail must be one of {sorted(_DETAILS)}", where
        )
    return image_part(obj.get("url"), where, detail=detail)


def image_part(url: Any, where: str, *, detail: str | None = None) -> ImagePart:
    """An image from its URL: ``https://...`` or ``data:image/<type>;base64,<data>``."""
    if not isinstance(url, str) or not url:
        raise invalid("invalid_request", f"{where}.url must be a non-empty string", where)
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type.startswith("image/") or not data:
            raise invalid(
                "invalid_image",
                f"{where}.url: a data: URI must look like data:image/<type>;base64,<data>",
                where,
            )
        return ImagePart(url, media_type=media_type.lower(), detail=detail)
    if url.startswith("https://") and len(url) > len("https://"):
        return ImagePart(url, detail=detail)
    # http:// (and file:, ftp:, ...) is refused: the upstream would fetch it in the clear,
    # or not at all; the mount itself never fetches anything.
    raise invalid("invalid_image", f"{where}.url must be an https URL or a data: URI", where)


def data_uri_bytes(image: ImagePart) -> int:
    """Decoded size of a ``data:`` URI image (0 for a URL), without decoding it."""
    if not image.url.startswith("data:"):
        return 0
    data = image.url.partition(",")[2]
    return len(data) * 3 // 4 - data[-2:].count("=")


def parse_response_format(value: Any, key: str = "response_format") -> ResponseFormat | None:
    """OpenAI chat's ``response_format``: ``{"type": "text"}`` (``None``: nothing asked),
    ``{"type": "json_object"}``, or ``{"type": "json_schema", "json_schema": {"name",
    "schema", "strict", "description"}}``."""
    if value is None:
        return None
    obj = _expect_mapping(value, key)
    kind = obj.get("type")
    if kind == "text":
        _check_keys(obj, frozenset(("type",)), key)
        return None
    if kind == "json_object":
        _check_keys(obj, frozenset(("type",)), key)
        return ResponseFormat("json_object")
    if kind == "json_schema":
        _check_keys(obj, frozenset(("type", "json_schema")), key)
        spec = _expect_mapping(obj.get("json_schema"), f"{key}.json_schema")
        return json_schema_format(spec, f"{key}.json_schema")
    raise invalid(
        "invalid_parameter", f"{key}.type must be 'text', 'json_object' or 'json_schema'", key
    )


def json_schema_format(spec: Mapping[str, Any], where: str) -> ResponseFormat:
    """The ``{"name", "schema", "strict", "description"}`` of a JSON-schema format (OpenAI
    chat nests it under ``json_schema``; Responses' ``text.format`` has it flat)."""
    _check_keys(spec, frozenset(("name", "schema", "strict", "description", "type")), where)
    name, schema, strict = spec.get("name"), spec.get("schema"), spec.get("strict")
    if not isinstance(name, str) or not name:
        raise invalid("invalid_parameter", f"{where}.name must be a non-empty string", where)
    if schema is not None and not isinstance(schema, Mapping):
        raise invalid("invalid_parameter", f"{where}.schema must be an object", where)
    if strict is not None and not isinstance(strict, bool):
        raise invalid("invalid_parameter", f"{where}.strict must be a boolean", where)
    return ResponseFormat("json_schema", schema=schema or {}, name=name, strict=strict)


#: OpenAI's ``ReasoningEffort`` values (openai-python ``types/shared/reasoning_effort.py``).
_EFFORTS = frozenset(("none", "minimal", "low", "medium", "high", "xhigh", "max"))


def parse_reasoning_effort(value: Any, key: str = "reasoning_effort") -> Reasoning | None:
    """OpenAI's ``reasoning_effort`` (chat) or ``reasoning.effort`` (Responses)."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in _EFFORTS:
        raise invalid("invalid_parameter", f"{key!r} must be one of {sorted(_EFFORTS)}", key)
    return Reasoning(effort=value)


def parse_thinking(value: Any, key: str = "thinking") -> Reasoning | None:
    """Anthropic's ``thinking``: ``{"type": "enabled", "budget_tokens": n}`` or
    ``{"type": "disabled"}`` (``None``)."""
    if value is None:
        return None
    obj = _expect_mapping(value, key)
    kind = obj.get("type")
    if kind == "disabled":
        _check_keys(obj, frozenset(("type",)), key)
        return None
    if kind != "enabled":
        raise invalid("invalid_parameter", f"{key}.type must be 'enabled' or 'disabled'", key)
    _check_keys(obj, frozenset(("type", "budget_tokens")), key)
    budget = parse_number(
        obj.get("budget_tokens"), f"{key}.budget_tokens", low=1024, high=10_000_000, integer=True
    )
    if budget is None:
        raise invalid("invalid_parameter", f"{key}.budget_tokens is required", key)
    return Reasoning(budget_tokens=int(budget))
