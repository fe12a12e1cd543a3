"""Tool-call fragments as upstreams really send them, repaired into well-formed calls.

OpenAI's own stream gives every fragment an ``index`` and the first fragment of each call its
``id`` and name. Compatible servers differ, and clients break on each difference:

==========================================  ================================================
upstream shape                              repaired as
==========================================  ================================================
no ``index`` (Gemini's OpenAI layer)        a fragment with a new id or a new name starts a
                                            new call; one without continues the last call
parallel calls all ``index: 0``, distinct   a new ``id`` is a new call, whatever its index
ids (Ollama)
no ``id`` at all                            a stable made-up id, ``call_<token>_<n>``
arguments only in a final fragment          joined to the call its index (or id) names
the same ``id`` repeated on each fragment   one call
``arguments`` as a JSON object (Ollama's    its compact JSON text (``{"a":1}``), once, as the
native shape, some proxies)                 call's whole arguments
``arguments`` of any other non-string       ``upstream_bad_response``: there is no faithful
type, a non-int ``index``, a non-string     text for it, and passing it on breaks every client
``id`` or name                              protocol's schema
==========================================  ================================================

Out come :class:`~llm_sse_mount.events.ToolCallDelta` with indexes 0, 1, … in order of first
appearance; the first fragment of each call carries its id and name, later ones only
arguments. A call whose name comes after its id is held until the name arrives (``flush``
releases one that never gets a name). String arguments pass byte for byte.

The choice for an object: Ollama's native API and some proxies send ``arguments`` as the
parsed object. Its compact JSON text is exactly what the model meant, so refusing the stream
would fail a correct answer. An object is accepted only as a call's entire arguments: mixed
with string pieces there is no text to rebuild, and that is an ``upstream_bad_response``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UpstreamError
from ..events import ToolCallDelta

__all__ = ["ToolCallAssembler", "arguments_text"]


def _bad(message: str) -> UpstreamError:
    return UpstreamError(f"malformed tool call fragment: {message}", code="upstream_bad_response")


def arguments_text(value: Any) -> tuple[str, bool]:
    """``(text, was_object)`` for a fragment's ``arguments``; raises for an unusable type."""
    if value is None:
        return "", False
    if isinstance(value, str):
        return value, False
    if isinstance(value, Mapping):
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            raise _bad("arguments object cannot be written as JSON") from None
        return text, True
    raise _bad(f"arguments is a JSON {type(value).__name__}, not a string or an object")


@dataclass
class _Call:
    index: int
    upstream_index: int | None
    id: str
    name: str | None
    started: bool = False  # its first delta (id and name) went out
    pending: str = ""  # arguments held while the name is unknown
    has_arguments: bool = False
    object_arguments: bool = False


class ToolCallAssembler:
    """Raw fragments in, repaired :class:`ToolCallDelta` out. One instance per stream.

    ``id_prefix`` makes the made-up ids deterministic in tests; by default it is random per
    stream, so two streams never hand a client the same id.
    """

    def __init__(self, *, id_prefix: str | None = None) -> None:
        self._prefix = id_prefix if id_prefix is not None else f"call_{secrets.token_hex(6)}"
        self._calls: list[_Call] = []
        self._by_id: dict[str, _Call] = {}

    @property
    def count(self) -> int:
        """How many distinct calls were seen."""
        return len(self._calls)

    def feed(
        self,
        *,
        index: Any = None,
        id: Any = None,
        name: Any = None,
        arguments: Any = None,
    ) -> Iterator[ToolCallDelta]:
        """One upstream fragment (fields as the upstream sent them, unchecked)."""
        if index is not None and (
            not isinstance(index, int) or isinstance(index, bool) or index < 0
        ):
            raise _bad("index is not a non-negative integer")
        if id is not None and not isinstance(id, str):
            raise _bad("id is not a string")
        if name is not None and not isinstance(name, str):
            raise _bad("function name is not a string")
        text, was_object = arguments_text(arguments)
        call_id, call_name = id or None, name or None
        call = self._match(index, call_id, call_name)
        if call is None:
            call = self._start(index, call_id, call_name)
        elif call_name and call.name is None:
            call.name = call_name
        if text:
            if call.object_arguments or (was_object and call.has_arguments):
                raise _bad("arguments mix a JSON object with other fragments")
            call.has_arguments = True
            call.object_arguments = was_object
        if not call.started:
            if call.name is None:
                # Some servers send the id before the name; clients key a call by its first
                # fragment (the AI SDK names it then), so hold it until the name is known.
                call.pending += text
                return
            call.started = True
            yield ToolCallDelta(call.index, call.id, call.name, call.pending + text)
            call.pending = ""
        elif text:
            yield ToolCallDelta(call.index, None, None, text)

    def flush(self) -> Iterator[ToolCallDelta]:
        """The answer ended: release calls still waiting for a name (as nameless calls)."""
        for call in self._calls:
            if not call.started:
                call.started = True
                yield ToolCallDelta(call.index, call.id, None, call.pending)
                call.pending = ""

    def _match(self, index: int | None, call_id: str | None, name: str | None) -> _Call | None:
        if call_id is not None:
            # An id names its call, whatever the index says (Ollama: all index 0).
            return self._by_id.get(call_id)
        if index is not None:
            for call in reversed(self._calls):
                if call.upstream_index == index:
                    # Same index, no id, but a second name: a new call that reused the index.
                    if name and call.name and call.started:
                        return None
                    return call
            return None
        last = self._calls[-1] if self._calls else None
        if last is not None and name and last.name:
            return None  # no index, no id, a name: the next call (Gemini's OpenAI layer)
        return last

    def _start(self, index: int | None, call_id: str | None, name: str | None) -> _Call:
        ours = len(self._calls)
        made_id = call_id or f"{self._prefix}_{ours}"
        while made_id in self._by_id:  # an upstream id that happens to look like ours
            made_id += "_"
        call = _Call(ours, index, made_id, name)
        self._calls.append(call)
        self._by_id[made_id] = call
        return call
