"""The request body of OpenAI's Responses API (``POST /v1/responses``) → :class:`ChatRequest`
fields, strictly (shapes from openai-python's ``types/responses/response_create_params.py``
and ``response_input_item_param.py``).

``input`` is a string (one user message) or a list of items, translated to the chat model:

    message (role user / system / developer / assistant; ``type`` optional)
        content: a string, or parts ``input_text`` / ``input_image`` (``image_url``: an https
        URL or a ``data:`` URI; ``file_id`` is refused: the mount stores no files) /
        ``output_text`` / ``refusal`` (what a client echoes of an earlier answer)
    function_call         → an assistant turn's tool call (merged into the assistant turn
                            before it, as chat completions wants them)
    function_call_output  → a ``tool`` message
    reasoning             → dropped: earlier thinking is not sent back upstream (as on the
                            chat route), and its ``encrypted_content`` means nothing to us

``instructions`` becomes the first system message. The mount keeps nothing between requests,
so ``previous_response_id``, ``conversation``, ``item_reference`` items, ``background`` and
stored ``prompt`` templates are a 400 naming the parameter; ``store`` is accepted either way
and honoured as ``false`` (nothing is ever stored). Labels (``metadata``, ``user``,
``include``, ...) are accepted and ignored; hosted tools (web search, file search, ...) are
refused: only ``function`` tools exist here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RequestError
from ..request import (
    ContentPart,
    ImagePart,
    Message,
    Reasoning,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    image_part,
    json_schema_format,
    parse_number,
    parse_reasoning_effort,
)

__all__ = ["parse_responses_body"]


def _fail(message: str, param: str | None, code: str = "invalid_request") -> RequestError:
    return RequestError(message, code=code, param=param)


#: Labels and hints that do not change the answer: accepted, ignored.
_IGNORED = frozenset(
    (
        "metadata",
        "user",
        "include",
        "parallel_tool_calls",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "truncation",
        "stream_options",
        "store",
    )
)
#: Ask the mount to remember or fetch something: refused (it stores nothing).
_STATEFUL = ("previous_response_id", "conversation", "prompt", "context_management")
_PARSED = frozenset(
    (
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "max_output_tokens",
        "text",
        "reasoning",
        "stream",
        "background",
        "top_logprobs",
        "max_tool_calls",
    )
)
_ALLOWED = _PARSED | _IGNORED | frozenset(_STATEFUL)
_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def parse_responses_body(body: Any) -> tuple[dict[str, Any], bool]:
    """The Responses request body → ``(ChatRequest fields, stream)``."""
    if not isinstance(body, Mapping):
        raise _fail("the request body must be a JSON object", None)
    unknown = sorted(k for k in body if k not in _ALLOWED)
    if unknown:
        raise _fail(f"unknown or unsupported parameter {unknown[0]!r}", unknown[0], "unknown_field")
    for key in _STATEFUL:
        if body.get(key) is not None:
            raise _fail(
                f"{key!r} is not supported: this endpoint stores nothing between requests "
                "(send the whole conversation as input items)",
                key,
                "unsupported_parameter",
            )
    if body.get("background") not in (None, False):
        raise _fail("'background' is not supported", "background", "unsupported_parameter")
    for key, default in (("top_logprobs", 0), ("max_tool_calls", None)):
        value = body.get(key)
        if value is not None and not (value == default and not isinstance(value, bool)):
            raise _fail(f"{key!r} is not supported here", key, "unsupported_parameter")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _fail("'stream' must be a boolean", "stream", "invalid_parameter")
    messages = _instructions(body.get("instructions")) + _input(body.get("input"))
    if not messages:
        raise _fail("'input' must not be empty", "input")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise _fail("'model' must be a non-empty string", "model", "invalid_parameter")
    fields: dict[str, Any] = {
        "messages": tuple(messages),
        "model": model,
        "temperature": _number(body, "temperature", 0, 2),
        "top_p": _number(body, "top_p", 0, 1),
        "max_tokens": _number(body, "max_output_tokens", 1, 10_000_000, integer=True),
        "stop": (),
        "tools": _tools(body.get("tools")),
        "tool_choice": _tool_choice(body.get("tool_choice")),
        "response_format": _text_format(body.get("text")),
        "reasoning": _reasoning(body.get("reasoning")),
    }
    return fields, bool(stream)


def _number(
    body: Mapping[str, Any], key: str, low: float, high: float, *, integer: bool = False
) -> float | int | None:
    try:
        return parse_number(body.get(key), key, low=low, high=high, integer=integer)
    except RequestError as exc:
        raise _fail(exc.message, key, exc.code) from None


def _mapping(value: Any, where: str, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(f"{where} must be an object", param)
    return value


def _string(value: Any, where: str, param: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise _fail(f"{where} must be a {'' if empty else 'non-empty '}string", param)
    return value


def _instructions(value: Any) -> list[Message]:
    if value is None or value == "":
        return []
    return [Message("system", _string(value, "'instructions'", "instructions"))]


def _input(value: Any) -> list[Message]:
    if isinstance(value, str):
        return [Message("user", value)] if value else []
    if not isinstance(value, list):
        raise _fail("'input' must be a string or a list of items", "input")
    out: list[Message] = []
    for i, raw in enumerate(value):
        where = f"input[{i}]"
        item = _mapping(raw, where, "input")
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            call = ToolCall(
                _string(item.get("call_id"), f"{where}.call_id", "input", empty=False),
                _string(item.get("name"), f"{where}.name", "input", empty=False),
                _string(item.get("arguments", ""), f"{where}.arguments", "input"),
            )
            last = out[-1] if out else None
            if last is not None and last.role == "assistant" and not last.parts:
                out[-1] = Message("assistant", last.content, tool_calls=(*last.tool_calls, call))
            else:
                out.append(Message("assistant", "", tool_calls=(call,)))
        elif kind == "function_call_output":
            call_id = _string(item.get("call_id"), f"{where}.call_id", "input", empty=False)
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of_parts(output, where)
            out.append(Message("tool", text, tool_call_id=call_id))
        elif kind == "reasoning":
            continue
        elif kind == "item_reference":
            raise _fail(
                f"{where}: item_reference is not supported: this endpoint stores nothing "
                "(send the items themselves)",
                "input",
                "unsupported_parameter",
            )
        else:
            raise _fail(
                f"{where}: items of type {kind!r} are not supported here",
                "input",
                "unsupported_content",
            )
    return out


def _message(item: Mapping[str, Any], where: str) -> Message:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise _fail(f"{where}.role must be one of {sorted(_ROLES)}", "input", "invalid_role")
    content = item.get("content")
    if isinstance(content, str):
        return Message(_ROLES[role], content)
    if not isinstance(content, list):
        raise _fail(f"{where}.content must be a string or a list of parts", "input")
    parts: list[ContentPart] = []
    for j, raw in enumerate(content):
        part = _mapping(raw, f"{where}.content[{j}]", "input")
        parts.append(_part(part, f"{where}.content[{j}]"))
    text = "".join(p.text for p in parts if isinstance(p, TextPart))
    if not any(isinstance(p, ImagePart) for p in parts):
        return Message(_ROLES[role], text)
    if role != "user":
        raise _fail(f"{where}: only user messages may hold images", "input", "unsupported_content")
    return Message("user", text, parts=tuple(parts))


def _part(part: Mapping[str, Any], where: str) -> ContentPart:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return TextPart(_string(part.get("text"), f"{where}.text", "input"))
    if kind == "refusal":
        return TextPart(_string(part.get("refusal"), f"{where}.refusal", "input"))
    if kind == "input_image":
        if part.get("file_id") is not None:
            raise _fail(
                f"{where}: file_id images are not supported (this endpoint stores no files)",
                "input",
                "unsupported_content",
            )
        detail = part.get("detail")
        if detail is not None and detail not in ("auto", "low", "high"):
            raise _fail(f"{where}.detail must be 'auto', 'low' or 'high'", "input")
        try:
            return image_part(part.get("image_url"), where, detail=detail)
        except RequestError as exc:
            raise _fail(exc.message, "input", exc.code) from None
    raise _fail(
        f"{where}: parts of type {kind!r} are not supported here", "input", "unsupported_content"
    )


def _text_of_parts(value: Any, where: str) -> str:
    if not isinstance(value, list):
        raise _fail(f"{where}.output must be a string or a list of parts", "input")
    texts = []
    for j, raw in enumerate(value):
        part = _mapping(raw, f"{where}.output[{j}]", "input")
        if part.get("type") != "input_text":
            raise _fail(
                f"{where}.output[{j}]: only input_text parts are supported in a tool output",
                "input",
                "unsupported_content",
            )
        texts.append(_string(part.get("text"), f"{where}.output[{j}].text", "input"))
    return "".join(texts)


def _tools(value: Any) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail("'tools' must be a list", "tools", "invalid_parameter")
    tools = []
    for i, raw in enumerate(value):
        item = _mapping(raw, f"tools[{i}]", "tools")
        if item.get("type") != "function":
            raise _fail(
                f"tools[{i}]: only function tools are supported (got {item.get('type')!r})",
                "tools",
                "unsupported_parameter",
            )
        name = _string(item.get("name"), f"tools[{i}].name", "tools", empty=False)
        params = item.get("parameters")
        if params is not None and not isinstance(params, Mapping):
            raise _fail(f"tools[{i}].parameters must be an object", "tools", "invalid_parameter")
        desc = item.get("description")
        tools.append(Tool(name, desc if isinstance(desc, str) else None, params))
    return tuple(tools)


def _tool_choice(value: Any) -> str | Mapping[str, Any] | None:
    if value is None or (isinstance(value, str) and value in ("auto", "none", "required")):
        return value
    if isinstance(value, Mapping) and value.get("type") == "function":
        name = _string(value.get("name"), "tool_choice.name", "tool_choice", empty=False)
        return {"type": "function", "function": {"name": name}}  # the chat form, as stored
    raise _fail(
        "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\"}",
        "tool_choice",
        "invalid_parameter",
    )


def _text_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    text = _mapping(value, "'text'", "text")
    unknown = sorted(k for k in text if k not in ("format", "verbosity"))
    if unknown:
        raise _fail(f"unknown field {unknown[0]!r} in 'text'", "text", "unknown_field")
    fmt = text.get("format")
    if fmt is None:
        return None
    fmt = _mapping(fmt, "text.format", "text")
    kind = fmt.get("type")
    try:
        if kind == "text":
            return None
        if kind == "json_object":
            return ResponseFormat("json_object")
        if kind == "json_schema":
            return json_schema_format(fmt, "text.format")
    except RequestError as exc:
        raise _fail(exc.message, "text", exc.code) from None
    raise _fail(
        "text.format.type must be 'text', 'json_object' or 'json_schema'",
        "text",
        "invalid_parameter",
    )


def _reasoning(value: Any) -> Reasoning | None:
    if value is None:
        return None
    obj = _mapping(value, "'reasoning'", "reasoning")
    unknown = sorted(k for k in obj if k not in ("effort", "summary", "generate_summary"))
    if unknown:
        raise _fail(f"unknown field {unknown[0]!r} in 'reasoning'", "reasoning", "unknown_field")
    try:
        return parse_reasoning_effort(obj.get("effort"), "reasoning.effort")
    except RequestError as exc:
        raise _fail(exc.message, "reasoning", exc.code) from None
