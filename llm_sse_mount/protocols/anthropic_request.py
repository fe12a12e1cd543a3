"""Anthropic's Messages API request body → the fields of a :class:`~..request.ChatRequest`.

The mapping (our request model is OpenAI-shaped, so every upstream can take it)::

    system (string, or text blocks)       a leading system message
    user text / image blocks              a user message (images as parts: base64 sources
                                          become data: URIs, URL sources stay URLs)
    user tool_result blocks               one ``tool`` message each, before the turn's text,
                                          in the order given (OpenAI wants results first)
    assistant text + tool_use blocks      one assistant message with ``tool_calls``
    assistant thinking blocks             dropped: they are the model's own earlier output,
                                          which SDKs echo back; no OpenAI upstream takes them
    tools[].input_schema                  the function's ``parameters``
    tool_choice auto / any / tool / none  "auto" / "required" / {function: name} / "none"
    stop_sequences                        ``stop``
    max_tokens (required)                 ``max_tokens``
    thinking {enabled, budget_tokens}     ``Reasoning(budget_tokens=...)``; adaptive, disabled:
                                          none (the upstream's default)
    output_config.format (json_schema)    ``response_format`` (refused by upstreams that cannot)
    output_config.effort                  ``Reasoning(effort=...)``
    metadata, service_tier, ...           accepted, ignored (labels, not answers)

Strict like every protocol here: an unknown field is a 400 naming it; a field that would change
the answer but cannot be honoured (``top_k``, server tools, documents) is a 400 that says so.
"""

from __future__ import annotations

import json
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
    invalid,
    parse_number,
)

__all__ = ["parse_anthropic_body"]

#: Labels and hints that do not change what the client gets back: accepted, ignored.
_IGNORED = frozenset(
    (
        "metadata",
        "service_tier",
        "cache_control",
        "inference_geo",
        "speed",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
    )
)
_ALLOWED = _IGNORED | {
    "model",
    "messages",
    "system",
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
}
#: Known, but they would change the answer and no upstream path honours them here.
_UNSUPPORTED = frozenset(("top_k", "container", "mcp_servers", "context_management"))

#: Keys a content block may carry besides its own, all of them hints (prompt caching, citations).
_BLOCK_HINTS = frozenset(("cache_control", "citations"))


def _fail(message: str, code: str = "invalid_request") -> RequestError:
    # The message names the field; Anthropic's error shape has no ``param`` to fill.
    return invalid(code, message)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(f"{where} must be a JSON object")
    return value


def _string(value: Any, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise _fail(f"{where} must be a {'' if empty else 'non-empty '}string")
    return value


def _check_keys(block: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in block if k not in allowed and k not in _BLOCK_HINTS)
    if unknown:
        raise _fail(f"unknown field {unknown[0]!r} in {where}", code="unknown_field")


def parse_anthropic_body(body: Any) -> tuple[dict[str, Any], bool]:
    """The Messages API body → ``(ChatRequest fields, stream)``; raises :class:`RequestError`."""
    obj = _mapping(body, "the request body")
    unknown = sorted(str(k) for k in obj if k not in _ALLOWED)
    if unknown:
        name = unknown[0]
        if name in _UNSUPPORTED:
            raise _fail(f"{name!r} is not supported here", "unsupported_parameter")
        raise _fail(f"unknown or unsupported parameter {name!r}", "unknown_field")
    stream = obj.get("stream", False)
    if not isinstance(stream, bool):
        raise _fail("'stream' must be a boolean", "invalid_parameter")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        # Anthropic requires a model; the SDK always sends one.
        raise _fail("'model' must be a non-empty string", "invalid_parameter")
    if obj.get("max_tokens") is None:
        raise _fail("'max_tokens' is required", "invalid_request")
    fields: dict[str, Any] = {
        "model": model,
        "messages": (*_system(obj.get("system")), *_messages(obj.get("messages"))),
        "max_tokens": _number(obj, "max_tokens", 1, 10_000_000, integer=True),
        "temperature": _number(obj, "temperature", 0, 1),
        "top_p": _number(obj, "top_p", 0, 1),
        "stop": _stop_sequences(obj.get("stop_sequences")),
        "tools": _tools(obj.get("tools")),
        "tool_choice": _tool_choice(obj.get("tool_choice")),
    }
    reasoning = _thinking(obj.get("thinking"))
    fmt, effort = _output_config(obj.get("output_config"))
    if effort is not None:
        budget = reasoning.budget_tokens if reasoning is not None else None
        reasoning = Reasoning(effort=effort, budget_tokens=budget)
    fields["reasoning"] = reasoning
    fields["response_format"] = fmt
    return fields, stream


def _number(obj: Mapping[str, Any], key: str, low: float, high: float, **kw: Any) -> Any:
    try:
        return parse_number(obj.get(key), key, low=low, high=high, **kw)
    except RequestError as exc:
        raise _fail(exc.message, exc.code) from None


def _system(value: Any) -> tuple[Message, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (Message("system", value),) if value else ()
    if not isinstance(value, list):
        raise _fail("'system' must be a string or a list of text blocks")
    texts = []
    for i, raw in enumerate(value):
        block = _mapping(raw, f"system[{i}]")
        if block.get("type") != "text":
            raise _fail(f"system[{i}] must be a text block", "unsupported_content")
        _check_keys(block, frozenset(("type", "text")), f"system[{i}]")
        texts.append(_string(block.get("text"), f"system[{i}].text"))
    text = "\n\n".join(t for t in texts if t)
    return (Message("system", text),) if text else ()


def _messages(value: Any) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise _fail("'messages' must be a non-empty list")
    out: list[Message] = []
    for i, raw in enumerate(value):
        where = f"messages[{i}]"
        msg = _mapping(raw, where)
        _check_keys(msg, frozenset(("role", "content")), where)
        role = msg.get("role")
        if not isinstance(role, str) or role not in ("user", "assistant"):
            raise _fail(f"{where}.role must be 'user' or 'assistant'", "invalid_role")
        content = msg.get("content")
        if isinstance(content, str):
            out.append(Message(role, content))
        elif isinstance(content, list):
            out += _assistant(content, where) if role == "assistant" else _user(content, where)
        else:
            raise _fail(f"{where}.content must be a string or a list of blocks")
    return out


def _user(blocks: list[Any], where: str) -> list[Message]:
    results: list[Message] = []
    parts: list[ContentPart] = []
    for j, raw in enumerate(blocks):
        at = f"{where}.content[{j}]"
        block = _mapping(raw, at)
        kind = block.get("type")
        if kind == "text":
            _check_keys(block, frozenset(("type", "text")), at)
            parts.append(TextPart(_string(block.get("text"), f"{at}.text")))
        elif kind == "image":
            _check_keys(block, frozenset(("type", "source")), at)
            parts.append(_image(block.get("source"), f"{at}.source"))
        elif kind == "tool_result":
            _check_keys(block, frozenset(("type", "tool_use_id", "content", "is_error")), at)
            tool_use_id = _string(block.get("tool_use_id"), f"{at}.tool_use_id", empty=False)
            text = _tool_result_text(block.get("content"), at)
            if block.get("is_error") is True:
                text = f"Error: {text}"  # OpenAI has no error flag; say it in the content
            results.append(Message("tool", text, tool_call_id=tool_use_id))
        else:
            raise _fail(f"{at}: blocks of type {kind!r} are not supported", "unsupported_content")
    out = results
    if parts or not results:
        text = "".join(p.text for p in parts if isinstance(p, TextPart))
        # parts only when there is an image: text-only turns look as they always did.
        has_image = any(isinstance(p, ImagePart) for p in parts)
        out.append(Message("user", text, parts=tuple(parts) if has_image else ()))
    return out


def _image(value: Any, at: str) -> ImagePart:
    """An image block's ``source``: base64 bytes or a URL (the mount never fetches it)."""
    source = _mapping(value, at)
    kind = source.get("type")
    if kind == "base64":
        _check_keys(source, frozenset(("type", "media_type", "data")), at)
        media_type = _string(source.get("media_type"), f"{at}.media_type", empty=False)
        data = _string(source.get("data"), f"{at}.data", empty=False)
        return image_part(f"data:{media_type};base64,{data}", at)
    if kind == "url":
        _check_keys(source, frozenset(("type", "url")), at)
        return image_part(source.get("url"), at)
    raise _fail(f"{at}.type must be 'base64' or 'url'", "unsupported_content")


def _tool_result_text(content: Any, at: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _fail(f"{at}.content must be a string or a list of text blocks")
    texts = []
    for k, raw in enumerate(content):
        block = _mapping(raw, f"{at}.content[{k}]")
        if block.get("type") != "text":
            raise _fail(f"{at}.content[{k}]: only text is supported here", "unsupported_content")
        _check_keys(block, frozenset(("type", "text")), f"{at}.content[{k}]")
        texts.append(_string(block.get("text"), f"{at}.content[{k}].text"))
    return "".join(texts)


def _assistant(blocks: list[Any], where: str) -> list[Message]:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for j, raw in enumerate(blocks):
        at = f"{where}.content[{j}]"
        block = _mapping(raw, at)
        kind = block.get("type")
        if kind == "text":
            _check_keys(block, frozenset(("type", "text")), at)
            texts.append(_string(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            _check_keys(block, frozenset(("type", "id", "name", "input", "caller")), at)
            call_id = _string(block.get("id"), f"{at}.id", empty=False)
            name = _string(block.get("name"), f"{at}.name", empty=False)
            tool_input = _mapping(block.get("input", {}), f"{at}.input")
            arguments = json.dumps(tool_input, ensure_ascii=False, allow_nan=False)
            calls.append(ToolCall(call_id, name, arguments))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _fail(f"{at}: blocks of type {kind!r} are not supported", "unsupported_content")
    return [Message("assistant", "".join(texts), tool_calls=tuple(calls))]


def _stop_sequences(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    # At most 4: the OpenAI-compatible upstreams the request goes to take no more.
    if isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise _fail("'stop_sequences' must be a list of up to 4 strings", "invalid_parameter")


def _tools(value: Any) -> tuple[Tool, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail("'tools' must be a list", "invalid_parameter")
    tools = []
    for i, raw in enumerate(value):
        tool = _mapping(raw, f"tools[{i}]")
        kind = tool.get("type", "custom")
        if kind != "custom":  # web_search_..., bash_..., computer_...: Anthropic's own tools
            raise _fail(
                f"tools[{i}]: server tools ({kind!r}) are not supported here",
                "unsupported_parameter",
            )
        keys = ("type", "name", "description", "input_schema", "strict", "eager_input_streaming")
        _check_keys(tool, frozenset(keys), f"tools[{i}]")
        name = _string(tool.get("name"), f"tools[{i}].name", empty=False)
        schema = _mapping(tool.get("input_schema"), f"tools[{i}].input_schema")
        desc = tool.get("description")
        if desc is not None and not isinstance(desc, str):
            raise _fail(f"tools[{i}].description must be a string")
        tools.append(Tool(name, desc, schema))
    return tuple(tools)


def _tool_choice(value: Any) -> str | Mapping[str, Any] | None:
    if value is None:
        return None
    choice = _mapping(value, "'tool_choice'")
    kind = choice.get("type")
    # disable_parallel_tool_use is a hint, like OpenAI's parallel_tool_calls on the other route.
    simple = {"auto": "auto", "any": "required", "none": "none"}
    if isinstance(kind, str) and kind in simple:
        _check_keys(choice, frozenset(("type", "disable_parallel_tool_use")), "tool_choice")
        return simple[kind]
    if kind == "tool":
        _check_keys(choice, frozenset(("type", "name", "disable_parallel_tool_use")), "tool_choice")
        name = _string(choice.get("name"), "tool_choice.name", empty=False)
        return {"type": "function", "function": {"name": name}}
    raise _fail(
        "'tool_choice.type' must be 'auto', 'any', 'tool' or 'none'",
        "invalid_parameter",
    )


def _thinking(value: Any) -> Reasoning | None:
    """``enabled`` with a budget → ``Reasoning(budget_tokens)``; ``adaptive`` (the model decides)
    and ``disabled`` → ``None``: the upstream's own default is what adaptive asks for."""
    if value is None:
        return None
    config = _mapping(value, "'thinking'")
    kind = config.get("type")
    if kind == "disabled":
        _check_keys(config, frozenset(("type",)), "thinking")
        return None
    if kind == "adaptive":
        _check_keys(config, frozenset(("type", "display")), "thinking")
        return None
    if kind != "enabled":
        raise _fail(
            "'thinking.type' must be 'enabled', 'adaptive' or 'disabled'", "invalid_parameter"
        )
    _check_keys(config, frozenset(("type", "budget_tokens", "display")), "thinking")
    # 1024 at least, as Anthropic's API requires.
    budget = _number(config, "budget_tokens", 1024, 10_000_000, integer=True)
    if budget is None:
        raise _fail("'thinking.budget_tokens' is required", "invalid_parameter")
    return Reasoning(budget_tokens=int(budget))


#: Anthropic's effort levels, which OpenAI's reasoning effort also has.
_EFFORTS = ("low", "medium", "high", "xhigh", "max")


def _output_config(value: Any) -> tuple[ResponseFormat | None, str | None]:
    """``output_config``: ``format`` (structured output: a JSON schema) and ``effort``."""
    if value is None:
        return None, None
    config = _mapping(value, "'output_config'")
    _check_keys(config, frozenset(("format", "effort")), "output_config")
    effort = config.get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in _EFFORTS):
        raise _fail(f"'output_config.effort' must be one of {list(_EFFORTS)}", "invalid_parameter")
    fmt = None
    if config.get("format") is not None:
        spec = _mapping(config["format"], "'output_config.format'")
        _check_keys(spec, frozenset(("type", "schema")), "output_config.format")
        if spec.get("type") != "json_schema":
            raise _fail("'output_config.format.type' must be 'json_schema'", "invalid_parameter")
        schema = _mapping(spec.get("schema"), "'output_config.format.schema'")
        # OpenAI's json_schema needs a name; Anthropic's has none.
        fmt = ResponseFormat("json_schema", schema=schema, name="response")
    return fmt, effort
