"""The embedded default provider: a believable streamed answer with no network and no key.

It makes ``make run`` show real token-by-token streaming on a fresh machine, and lets tests
script any sequence of events, pauses and failures, before the stream (``fail_open``) or in the
middle of it (:class:`Fail`, :class:`Hang`).

A script is a list of steps, run in order by :class:`ScriptedStream`:

- :class:`Emit` yields one event as given;
- :class:`Text` yields a text (or reasoning) in pieces;
- :class:`Pause` waits; :class:`Hang` waits until the stream is closed or cancelled;
- :class:`Fail` raises, like an upstream error frame after some output.

Waits end early when the stream is closed (``aclose``), as closing a real HTTP response would
end a blocked read.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import anyio
import anyio.lowlevel
import httpx

from ..errors import ConfigError, LLMSSEError
from ..events import Finish, ProviderEvent, ReasoningDelta, TextDelta, Usage
from ..request import ChatRequest

__all__ = [
    "Emit",
    "Fail",
    "Hang",
    "Pause",
    "ScriptStep",
    "Scripted",
    "ScriptedStream",
    "Text",
    "split_pieces",
]


# --- script steps -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Emit:
    """Yield ``event`` as is."""

    event: ProviderEvent


@dataclass(frozen=True, slots=True)
class Text:
    """Yield ``text`` as :class:`~llm_sse_mount.events.TextDelta` pieces (or
    :class:`~llm_sse_mount.events.ReasoningDelta` with ``reasoning=True``), ``pace`` seconds
    apart. ``pieces=None`` splits like a tokenizer would (:func:`split_pieces`); an integer
    splits into that many near-equal parts (capped at one character per part)."""

    text: str
    pieces: int | None = None
    reasoning: bool = False
    pace: float = 0.0

    def __post_init__(self) -> None:
        if self.pieces is not None and self.pieces < 1:
            raise ConfigError("Text.pieces must be at least 1")
        if self.pace < 0:
            raise ConfigError("Text.pace must not be negative")

    def split(self) -> list[str]:
        if self.pieces is None:
            return split_pieces(self.text)
        n = min(self.pieces, len(self.text))
        if n == 0:
            return []
        size, extra = divmod(len(self.text), n)
        out, start = [], 0
        for i in range(n):
            end = start + size + (1 if i < extra else 0)
            out.append(self.text[start:end])
            start = end
        return out


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds`` (ends early if the stream is closed)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Fail:
    """Raise (a copy of) ``error`` from the event iterator, as an upstream error frame would."""

    error: LLMSSEError


@dataclass(frozen=True, slots=True)
class Hang:
    """Never yield again, until the stream is closed or the reading task is cancelled: an
    upstream that stalls mid-answer."""


#: One step of a script.
ScriptStep: TypeAlias = Emit | Text | Pause | Fail | Hang


# --- splitting text like a tokenizer ----------------------------------------------------------

# CJK ideographs, kana, CJK punctuation and full-width forms: tokenizers give these one or two
# characters per token, while they give Latin text roughly a word per token.
_CJK = r"\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_PIECE = re.compile(
    rf"\n+"  # newline runs are tokens of their own
    rf"|[ \t]*[{_CJK}]+"  # a CJK run (cut into 1-2 characters below)
    rf"|[ \t]*(?:(?![{_CJK}])\w){{1,10}}"  # a word with its leading space; long words split
    rf"|[ \t]*[^\w\s]"  # one punctuation mark or symbol (emoji included)
    rf"|[^\n]"  # anything else (stray whitespace): nothing is ever dropped
)
_CJK_RUN = re.compile(rf"[{_CJK}]")


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into token-sized pieces: words with their leading space, punctuation,
    newline runs, and CJK text by one or two characters. ``"".join(split_pieces(t)) == t``.

    >>> split_pieces("Hello, 世界和平!\\n")
    ['Hello', ',', ' 世界', '和', '平', '!', '\\n']
    """
    pieces: list[str] = []
    for match in _PIECE.finditer(text):
        piece = match.group()
        if not _CJK_RUN.search(piece):
            pieces.append(piece)
            continue
        # Alternate two and one characters (the leading space rides on the first piece), so
        # Chinese streams at a visibly different rhythm from English, as it does for real.
        lead = len(piece) - len(piece.lstrip(" \t"))
        start, end, width = 0, lead + 2, 2
        while start < len(piece):
            pieces.append(piece[start:end])
            width = 3 - width
            start, end = end, end + width
    return pieces


def _estimate_tokens(text: str) -> int:
    """A rough token count: one per CJK character, one per four other characters."""
    cjk = len(_CJK_RUN.findall(text))
    return cjk + -(-(len(text) - cjk) // 4)


# --- the default answer -----------------------------------------------------------------------

_REASONING = (
    "The user asked: “{question}”. 这里没有真实的模型，我是内置的 scripted provider，"
    "so I will answer with a short paragraph and a three-item list."
)
_ANSWER = (
    "You asked: “{question}”\n\n"
    "这是一个内置的演示回答 (a scripted demo answer)：没有调用任何真实模型，"
    "所以不需要 API key，也不需要网络。 It streams token by token, exactly like a real LLM ✨\n\n"
    "What this shows:\n"
    "1. Server-Sent Events 把每个 token 实时推送到浏览器。\n"
    "2. 中文与 English 混排，multi-byte UTF-8 characters are never cut in half.\n"
    "3. Configure a real provider (OpenAI-compatible, Zhipu GLM, Anthropic) to talk to a real "
    "model."
)
_NO_QUESTION = "(no question)"


def _question(request: ChatRequest) -> str:
    """The last user message, on one line and short enough to echo."""
    for message in reversed(request.messages):
        if message.role == "user":
            text = " ".join(message.content.split())
            if text:
                return text if len(text) <= 80 else text[:79] + "…"
    return _NO_QUESTION


# --- the provider -----------------------------------------------------------------------------


class ScriptedStream:
    """One scripted answer. ``closed`` turns true on :meth:`aclose` (tests assert that the relay
    closed its upstream); after that, waits end at once and :meth:`events` stops."""

    def __init__(self, steps: Sequence[ScriptStep]) -> None:
        self.steps: tuple[ScriptStep, ...] = tuple(steps)
        self.closed = False
        self._closed_event = anyio.Event()
        self._started = False

    def events(self) -> AsyncIterator[ProviderEvent]:
        # Like an HTTP response body, a stream can be read once.
        if self._started:
            raise RuntimeError("ScriptedStream.events() may only be called once")
        self._started = True
        return self._run()

    async def _run(self) -> AsyncIterator[ProviderEvent]:
        for step in self.steps:
            if self.closed:
                return
            if isinstance(step, Emit):
                # A checkpoint per event even without a pause: a real upstream yields to the
                # event loop between reads, and cancellation must be able to land here.
                await anyio.lowlevel.checkpoint()
                yield step.event
            elif isinstance(step, Text):
                kind = ReasoningDelta if step.reasoning else TextDelta
                for piece in step.split():
                    await self._wait(step.pace)
                    if self.closed:
                        return
                    yield kind(piece)
            elif isinstance(step, Pause):
                await self._wait(step.seconds)
            elif isinstance(step, Fail):
                await anyio.lowlevel.checkpoint()
                # A copy, so a script reused across requests never shares (and grows) one
                # traceback; LLMSSEError's attributes live in __dict__, which copy keeps.
                raise copy.copy(step.error)
            elif isinstance(step, Hang):
                await self._closed_event.wait()

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        # Not anyio.sleep: aclose() from another task must end the wait at once, as closing
        # a real response ends a blocked read. Still cancellable like any anyio wait.
        with anyio.move_on_after(seconds):
            await self._closed_event.wait()

    async def aclose(self) -> None:
        """Mark the stream closed and wake any wait (idempotent)."""
        self.closed = True
        self._closed_event.set()


class Scripted:
    """A provider that needs no network and no key: the mount's default, and the tests' tool.

    Without ``script`` it answers the last user message with a short reasoning part, then a
    paragraph and a three-item list mixing English and Chinese (``reasoning``/``answer``
    replace these texts; ``reasoning=""`` leaves it out), in token-sized pieces ``pace``
    seconds apart (± ``jitter`` × ``pace``, reproducible with ``seed``), then
    :class:`~llm_sse_mount.events.Usage` (if ``usage``) and ``Finish("stop")``. With
    ``request.max_tokens`` it stops after that many pieces (reasoning included, as reasoning
    models count it) with ``Finish("length")``.

    With ``script`` (steps, or a callable from the :class:`ChatRequest` to steps) it runs
    exactly those steps, adding nothing: no pacing, no usage, no finish, no ``max_tokens``.

    ``fail_open`` is raised by :meth:`open` itself, like an upstream that answers 429 or 502
    before any stream begins. ``opened`` counts calls to :meth:`open` (failed ones too, so a
    retry loop can be checked) and ``last_request`` keeps the last request seen.

    Example::

        app.mount("/llm", LLMMount(provider=Scripted(), model="scripted-1"))

        provider = Scripted(script=[Text("Hello, 世界"), Fail(UpstreamError("boom"))])
        stream = await provider.open(request, http)
        async for event in stream.events():  # TextDelta("Hello"), TextDelta(","), ... then raises
            ...
    """

    name: str = "scripted"

    def __init__(
        self,
        *,
        answer: str | None = None,
        reasoning: str | None = None,
        pace: float = 0.03,
        jitter: float = 0.5,
        seed: int | None = None,
        default_model: str = "scripted-1",
        script: Sequence[ScriptStep] | Callable[[ChatRequest], Sequence[ScriptStep]] | None = None,
        fail_open: LLMSSEError | None = None,
        usage: bool = True,
    ) -> None:
        if not pace >= 0:
            raise ConfigError("Scripted pace must be zero or more seconds")
        if not 0 <= jitter <= 1:
            raise ConfigError("Scripted jitter must be a fraction between 0 and 1")
        self.answer = answer
        self.reasoning = reasoning
        self.pace = pace
        self.jitter = jitter
        self.seed = seed
        self.script = script
        self.fail_open = fail_open
        self.usage = usage
        self.default_model: str | None = default_model
        self.client: httpx.AsyncClient | None = None
        self.opened = 0
        self.last_request: ChatRequest | None = None

    async def open(self, request: ChatRequest, http: httpx.AsyncClient) -> ScriptedStream:
        """Start an answer to ``request`` (``http`` is ignored: there is no network)."""
        self.opened += 1
        self.last_request = request
        await anyio.lowlevel.checkpoint()
        if self.fail_open is not None:
            raise copy.copy(self.fail_open)
        steps: Sequence[ScriptStep]
        if self.script is None:
            steps = self._default_steps(request)
        elif callable(self.script):
            steps = self.script(request)
        else:
            steps = self.script
        return ScriptedStream(steps)

    def secrets(self) -> tuple[str, ...]:
        return ()

    def __repr__(self) -> str:
        mode = "script" if self.script is not None else "default"
        return f"Scripted({mode}, pace={self.pace!r}, default_model={self.default_model!r})"

    def _default_steps(self, request: ChatRequest) -> list[ScriptStep]:
        question = _question(request)
        reasoning = _REASONING if self.reasoning is None else self.reasoning
        answer = _ANSWER if self.answer is None else self.answer
        # A fresh generator per stream: with a seed every stream has the same rhythm.
        rng = random.Random(self.seed)
        limit = request.max_tokens
        steps: list[ScriptStep] = []
        count = 0
        finish = Finish("stop")
        # Only the built-in texts echo the question: a configured text is streamed verbatim.
        if self.reasoning is None:
            reasoning = reasoning.format(question=question)
        if self.answer is None:
            answer = answer.format(question=question)
        for kind, text in ((ReasoningDelta, reasoning), (TextDelta, answer)):
            for piece in split_pieces(text):
                if limit is not None and count >= limit:
                    finish = Finish("length")
                    break
                delay = self.pace * (1 + self.jitter * rng.uniform(-1, 1))
                steps += [Pause(delay), Emit(kind(piece))]
                count += 1
        if self.usage:
            prompt = max(1, sum(_estimate_tokens(m.content) for m in request.messages))
            steps.append(Emit(Usage(prompt, count, prompt + count)))
        steps.append(Emit(finish))
        return steps
