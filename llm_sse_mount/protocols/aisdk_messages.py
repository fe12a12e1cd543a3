r"""The request side of the AI SDK protocol: the JSON body ``useChat``'s default transport sends,
parsed into :class:`~llm_sse_mount.request.ChatRequest` fields.

``DefaultChatTransport`` (AI SDK 5+) posts ``{id, messages, trigger, messageId, ...body}``, where
``messages`` are ``UIMessage`` objects (``{id, role, parts, metadata?}``) and ``body`` is the
transport's ``body`` option (here: ``model`` and the sampling parameters the mount allows).

The conversion follows the AI SDK's own ``convertToModelMessages`` where our ``Message`` can
express it:

- ``text`` parts are joined; a user's ``file`` parts with an ``image/*`` ``mediaType`` are
  images (their ``url`` a ``data:`` URI or https); ``reasoning`` parts are dropped (models do
  not take their own thinking back); ``step-start``, other ``file``\s, ``source-*``,
  ``data-*`` and any part type a later SDK invents are ignored, so a newer front end never
  breaks an older mount.
- An assistant message is split into steps (at ``step-start``, or where text follows a tool
  call). Each step becomes one assistant ``Message`` with its text and the ``tool_calls`` that
  have an outcome, followed by one ``tool`` message per outcome. Tool parts still waiting for
  their output are left out: an upstream rejects a tool call without a result.

The top-level keys are strict, like every other body this package parses: a key nobody reads
is a mistake the client should hear about. ``UIMessage`` and part objects are not: the SDK adds
fields to them between releases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..codec import dumps
from ..request import (
    COMMON_FIELDS,
    ContentPart,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    image_part,
    invalid,
    parse_params,
)

__all__ = ["AISDK_KEYS", "UIChatBody", "parse_ui_body", "ui_messages_to_messages"]

#: Keys the transport itself sends, plus the shared fields its ``body`` option may add.
AISDK_KEYS = frozenset(("id", "trigger", "messageId")) | COMMON_FIELDS
TRIGGERS = frozenset(("submit-message", "regenerate-message"))
UI_ROLES = frozenset(("system", "user", "assistant"))
#: Tool part states that carry an outcome the upstream can be told about.
_DONE_STATES = frozenset(("output-available", "output-error"))


@dataclass(frozen=True, slots=True)
class UIChatBody:
    """A parsed ``useChat`` request: ``fields`` for :meth:`LLMMount.build_request`, and the id
    of the assistant message being continued (the last message, when it is the assistant's)."""

    fields: dict[str, Any]
    chat_id: str | None
    trigger: str
    continued_message_id: str | None


def _optional_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid("invalid_request", f"{where}.{key} must be a string")
    return value


def parse_ui_body(body: Any) -> UIChatBody:
    """Validate a ``useChat`` body. Malformed input raises :class:`RequestError` (400) with a
    stable code: ``invalid_request``, ``unknown_field``, ``invalid_role``, ``invalid_parameter``.
    """
    if not isinstance(body, Mapping):
        raise invalid("invalid_request", "the request body must be a JSON object")
    unknown = sorted(k for k in body if k not in AISDK_KEYS)
    if unknown:
        raise invalid("unknown_field", f"unknown field {unknown[0]!r} in the request body")
    chat_id = _optional_str(body, "id", "body")
    trigger = body.get("trigger") or "submit-message"
    if trigger not in TRIGGERS:
        raise invalid("invalid_parameter", f"'trigger' must be one of {sorted(TRIGGERS)}")
    _optional_str(body, "messageId", "body")
    params = parse_params(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise invalid("invalid_request", "'messages' must be a non-empty list of UI messages")
    messages = ui_messages_to_messages(raw)
    last = raw[-1]
    continued = last.get("id") if last.get("role") == "assistant" else None
    fields: dict[str, Any] = {"messages": messages, **params}
    return UIChatBody(
        fields=fields,
        chat_id=chat_id,
        trigger=trigger,
        continued_message_id=continued if isinstance(continued, str) and continued else None,
    )


def ui_messages_to_messages(raw: list[Any]) -> tuple[Message, ...]:
    """``UIMessage`` objects → our messages (see the module docstring for the rules)."""
    out: list[Message] = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, Mapping):
            raise invalid("invalid_request", f"{where} must be a JSON object")
        role = item.get("role")
        if role not in UI_ROLES:
            raise invalid("invalid_role", f"{where}.role must be one of {sorted(UI_ROLES)}")
        parts = item.get("parts")
        if not isinstance(parts, list):
            hint = " (AI SDK 4 'content' messages are not supported)" if "content" in item else ""
            raise invalid("invalid_request", f"{where}.parts must be a list{hint}")
        for j, part in enumerate(parts):
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise invalid(
                    "invalid_request", f"{where}.parts[{j}] must be an object with a string 'type'"
                )
        if role == "assistant":
            out += _assistant_messages(parts, where)
        else:
            text = _text_of(parts, where)
            content = _user_parts(parts, where) if role == "user" else ()
            # A message that was only a non-image file has nothing we can send.
            if text or content:
                out.append(Message(role, text, parts=content))
    if not out:
        raise invalid("invalid_request", "the messages contain no text to send")
    return tuple(out)


def _text_of(parts: list[Mapping[str, Any]], where: str) -> str:
    texts = []
    for j, part in enumerate(parts):
        if part["type"] == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid("invalid_request", f"{where}.parts[{j}].text must be a string")
            texts.append(text)
    return "".join(texts)


def _user_parts(parts: list[Mapping[str, Any]], where: str) -> tuple[ContentPart, ...]:
    """Text and images in order, when there is an image (``file`` parts with an ``image/*``
    ``mediaType``, their ``url`` a ``data:`` URI or https); ``()`` for text only."""
    out: list[ContentPart] = []
    for j, part in enumerate(parts):
        media = part.get("mediaType")
        if part["type"] == "text" and part.get("text"):
            out.append(TextPart(part["text"]))
        elif part["type"] == "file" and isinstance(media, str) and media.startswith("image/"):
            out.append(image_part(part.get("url"), f"{where}.parts[{j}]"))
    return tuple(out) if any(isinstance(p, ImagePart) for p in out) else ()


def _tool_name(part: Mapping[str, Any]) -> str | None:
    """The tool a part belongs to (``tool-<name>`` or ``dynamic-tool``), or None."""
    kind: str = part["type"]
    if kind == "dynamic-tool":
        name = part.get("toolName")
        return name if isinstance(name, str) else None
    if kind.startswith("tool-") and len(kind) > len("tool-"):
        return kind[len("tool-") :]
    return None


def _assistant_messages(parts: list[Mapping[str, Any]], where: str) -> list[Message]:
    out: list[Message] = []
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []

    def flush() -> None:
        text = "".join(texts)
        if text or calls:
            out.append(Message("assistant", text, tool_calls=tuple(calls)))
            out.extend(results)
        texts.clear()
        calls.clear()
        results.clear()

    for j, part in enumerate(parts):
        kind = part["type"]
        if kind == "step-start":
            flush()
        elif kind == "text":
            if calls:
                # Text after a tool call was written after its result: a new step.
                flush()
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid("invalid_request", f"{where}.parts[{j}].text must be a string")
            texts.append(text)
        else:
            name = _tool_name(part)
            if name is None or part.get("state") not in _DONE_STATES:
                continue
            call_id = part.get("toolCallId")
            if not isinstance(call_id, str) or not call_id:
                raise invalid(
                    "invalid_request", f"{where}.parts[{j}].toolCallId must be a non-empty string"
                )
            try:
                arguments = dumps(part.get("input") or {})
                result = _tool_result(part)
            except ValueError:  # NaN or Infinity, which Python's json.loads lets through
                raise invalid(
                    "invalid_request", f"{where}.parts[{j}] holds a number JSON cannot carry"
                ) from None
            calls.append(ToolCall(call_id, name, arguments))
            results.append(Message("tool", result, tool_call_id=call_id))
    flush()
    return out


def _tool_result(part: Mapping[str, Any]) -> str:
    if part.get("state") == "output-error":
        error = part.get("errorText")
        return f"Error: {error}" if isinstance(error, str) else "Error"
    output = part.get("output")
    # A string result goes as is; anything else as JSON, as the AI SDK sends it.
    return output if isinstance(output, str) else dumps(output)
