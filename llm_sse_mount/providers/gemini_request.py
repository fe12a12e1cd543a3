"""Our :class:`~llm_sse_mount.request.ChatRequest` as a Gemini ``generateContent`` body.

=========================================  ====================================================
ChatRequest                                Gemini (``v1beta``, google-genai's ``types.py``)
=========================================  ====================================================
``system`` messages                        ``systemInstruction.parts[].text`` (one part each)
``user`` message                           ``contents[]`` ``role: "user"``, a ``text`` part
``assistant`` message                      ``role: "model"``: a ``text`` part (if any), then a
                                           ``functionCall {name, args}`` part per tool call
``tool`` message                           ``role: "user"``, ``functionResponse {name,
                                           response}``; the name is the call's, found by
                                           ``tool_call_id``; a JSON-object result is the
                                           ``response``, anything else ``{"result": text}``
consecutive turns of one role              merged into one content (Gemini wants them so)
``tools[]``                                ``tools[0].functionDeclarations[]`` with
                                           ``parametersJsonSchema`` (full JSON Schema; the older
                                           ``parameters`` field refuses ``additionalProperties``)
``tool_choice`` auto / none / required     ``toolConfig.functionCallingConfig.mode`` AUTO /
                                           NONE / ANY
``tool_choice`` a named function           mode ANY with ``allowedFunctionNames: [name]``
``temperature`` / ``top_p`` / ``max_tokens``  ``generationConfig.temperature`` / ``topP`` /
                                           ``maxOutputTokens``
``stop``                                   ``generationConfig.stopSequences``
(always, unless switched off)              ``generationConfig.thinkingConfig.includeThoughts``
a user's ``data:`` image                   an ``inlineData {mimeType, data}`` part, in order
                                           (https image URLs are refused: Gemini fetches only
                                           its own Files API and Cloud Storage URIs)
``response_format`` ``json_object``        ``generationConfig.responseMimeType:
                                           "application/json"``
``response_format`` ``json_schema``        the same, and ``responseJsonSchema`` (JSON Schema)
``reasoning.budget_tokens``                ``thinkingConfig.thinkingBudget`` (an OpenAI effort
                                           has no Gemini equivalent here and is not sent)
=========================================  ====================================================

Replayed function calls carry the ``thoughtSignature`` Google documents for histories that did
not come from Gemini (``skip_thought_signature_validator``): the mount does not keep Gemini 3's
signatures between turns, and without one Gemini 3 refuses a history with function calls.
Call ids are not sent back: Gemini matches responses to calls by name and order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import RequestError
from ..request import ChatRequest, ImagePart, Message
from .capabilities import Capabilities

__all__ = ["build_gemini_body", "gemini_capabilities", "gemini_contents"]

_CAPABILITIES = Capabilities(
    image_urls=False, image_data=True, response_formats=frozenset({"json_object", "json_schema"})
)


def gemini_capabilities(provider: object, model: str) -> Capabilities:
    """What Gemini takes (``Gemini.capabilities``): inline images, JSON and JSON schemas."""
    return _CAPABILITIES


def _user_parts(message: Message) -> list[dict[str, Any]]:
    if not message.parts:
        return [{"text": message.content}] if message.content else []
    out: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, ImagePart):
            data = part.url.partition(",")[2]
            out.append({"inlineData": {"mimeType": part.media_type, "data": data}})
        elif part.text:
            out.append({"text": part.text})
    return out


#: Google's documented placeholder signature for function calls it did not sign itself.
REPLAY_SIGNATURE = "skip_thought_signature_validator"


def _args(arguments: str, where: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        raise RequestError(
            f"{where}: tool call arguments must be JSON for this provider", code="invalid_request"
        ) from None
    if not isinstance(value, dict):
        raise RequestError(f"{where}: tool call arguments must be a JSON object")
    return value


def _tool_result(content: str) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"result": content}


def gemini_contents(
    messages: Iterable[Message],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """``(systemInstruction, contents)`` for these messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id → function name, from earlier assistant turns
    for i, message in enumerate(messages):
        if message.role == "system":
            system.append({"text": message.content})
            continue
        parts: list[dict[str, Any]] = []
        if message.role == "tool":
            name = names.get(message.tool_call_id or "") or message.name
            if not name:
                raise RequestError(
                    f"messages[{i}]: a tool result must answer an earlier tool call"
                    " (Gemini needs the function's name)",
                    code="invalid_request",
                )
            response = _tool_result(message.content)
            parts.append({"functionResponse": {"name": name, "response": response}})
            role = "user"
        else:
            role = "model" if message.role == "assistant" else "user"
            parts.extend(_user_parts(message))
            for call in message.tool_calls:
                names[call.id] = call.name
                fc = {"name": call.name, "args": _args(call.arguments, f"messages[{i}]")}
                parts.append({"functionCall": fc, "thoughtSignature": REPLAY_SIGNATURE})
        if not parts:
            continue  # Gemini refuses a content without parts
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return ({"parts": system} if system else None), contents


def _tool_config(choice: str | Mapping[str, Any]) -> dict[str, Any]:
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, Mapping) and fn.get("name"):
            config = {"mode": "ANY", "allowedFunctionNames": [str(fn["name"])]}
            return {"functionCallingConfig": config}
    raise RequestError(
        "tool_choice cannot be expressed for this provider", code="invalid_parameter"
    )


def build_gemini_body(request: ChatRequest, *, include_thoughts: bool) -> dict[str, Any]:
    """The JSON body of ``streamGenerateContent`` (the model is in the URL, not here)."""
    system, contents = gemini_contents(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = system
    if request.tools:
        declarations = []
        for tool in request.tools:
            decl: dict[str, Any] = {"name": tool.name}
            if tool.description:
                decl["description"] = tool.description
            if tool.parameters is not None:
                decl["parametersJsonSchema"] = dict(tool.parameters)
            declarations.append(decl)
        body["tools"] = [{"functionDeclarations": declarations}]
    if request.tool_choice is not None:
        body["toolConfig"] = _tool_config(request.tool_choice)
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("max_tokens", "maxOutputTokens"),
    ):
        value = getattr(request, ours)
        if value is not None:
            config[theirs] = value
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if include_thoughts:
        config["thinkingConfig"] = {"includeThoughts": True}
    if request.reasoning is not None and request.reasoning.budget_tokens is not None:
        thinking = config.setdefault("thinkingConfig", {})
        thinking["thinkingBudget"] = request.reasoning.budget_tokens
    fmt = request.response_format
    if fmt is not None:
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema":
            config["responseJsonSchema"] = dict(fmt.schema or {})
    if config:
        body["generationConfig"] = config
    return body
