"""Mount settings: one frozen object in four groups, every default stated once, here.

``LLMMount(**options)`` takes each field below as a keyword argument of the same name (its
signature points at these defaults), and ``LLMMount.from_env()`` reads the ``LLM_SSE_*``
variables of :data:`ENVIRONMENT` through one parser. The relay, the producer, the serving core
and the stores read the groups they need; nothing else holds a copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import ConfigError

__all__ = [
    "CLIENT_PARAMS",
    "DEFAULTS",
    "ENVIRONMENT",
    "RequestPolicy",
    "RetryPolicy",
    "Settings",
    "StreamOptions",
    "Timeouts",
    "env_overrides",
    "normalize_origins",
    "parse_int",
    "parse_seconds",
    "parse_switch",
]

#: Request parameters a client may set unless the host narrows the list.
CLIENT_PARAMS: frozenset[str] = frozenset(
    (
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "reasoning",
    )
)


def normalize_origins(origins: Iterable[str]) -> frozenset[str]:
    """``scheme://host[:port]`` origins as browsers send them: lowercased, no trailing slash."""
    if isinstance(origins, str):
        origins = (origins,)  # one origin, not its characters
    out = set()
    for raw in origins:
        origin = raw.strip().rstrip("/").lower()
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
            raise ConfigError(
                f"allowed_origins entries look like 'https://app.example[:port]', got {raw!r}"
            )
        out.add(origin)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class RequestPolicy:
    """What a client may ask for. ``model``: the default model (always allowed); ``models``:
    the other allowed models; ``max_tokens``: a ceiling, also sent when a request names none;
    ``client_params``: request fields clients may set; size caps (413 / 400);
    ``max_images`` per request and ``max_image_bytes`` per ``data:`` image (400)."""

    model: str | None = None
    models: tuple[str, ...] = ()
    system_prompt: str | None = None
    max_tokens: int | None = None
    client_params: frozenset[str] = CLIENT_PARAMS
    max_body_bytes: int = 512 * 1024
    max_messages: int = 500
    max_chars: int = 400_000
    #: Seconds the whole request body may take to arrive (``None``: no deadline).
    body_timeout: float | None = 10.0
    #: Browser origins (``https://app.example``) that may call the mount (``None``: any).
    allowed_origins: frozenset[str] | None = None
    max_images: int = 16
    max_image_bytes: int = 5 * 1024 * 1024

    def __post_init__(self) -> None:
        unknown = set(self.client_params) - CLIENT_PARAMS
        if unknown:
            raise ConfigError(f"unknown client parameter(s): {sorted(unknown)}")
        if min(self.max_body_bytes, self.max_messages, self.max_chars) < 1:
            raise ConfigError("max_body_bytes, max_messages and max_chars must be at least 1")
        if self.body_timeout is not None and not 0 < self.body_timeout < float("inf"):
            raise ConfigError("body_timeout must be a positive number of seconds (or None)")
        if self.allowed_origins is not None:
            object.__setattr__(self, "allowed_origins", normalize_origins(self.allowed_origins))

    def allowed_models(self) -> list[str]:
        """The default model first, then the allow-list (empty: the host left it to clients)."""
        models = list(self.models)
        if self.model and self.model not in models:
            models.insert(0, self.model)
        return models


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Upstream timeouts in seconds (``None`` switches one off). ``first_token_timeout`` also
    bounds waiting for the upstream's status line; ``idle_timeout`` is the longest gap between
    two upstream events; ``total_timeout`` bounds the whole stream, retries included."""

    connect_timeout: float | None = 10.0
    first_token_timeout: float | None = 120.0
    idle_timeout: float | None = 120.0
    total_timeout: float | None = 900.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries per provider on retryable failures (connection errors, 429, 5xx) while nothing
    has been committed to the client; then the next fallback provider is tried. A
    ``Retry-After`` longer than ``max_backoff`` is not waited for."""

    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ConfigError("retries and backoff must not be negative")


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """The downstream side. ``ping_interval``: keep-alive comments; ``send_timeout``: a client
    that takes no frame for this long is dropped; ``shutdown_grace``: time open streams get to
    say ``server_shutdown``; ``resume_grace``: how long the upstream keeps going after the last
    reader left (0: cancel at once); ``retention``: how long finished streams stay readable
    (for the default memory store; a store you pass keeps its own); ``max_readers``: readers
    one stream may have at once (its first included; more get 429); ``max_response_time``: the
    longest one response may stay open, so a reader that drains just fast enough to dodge
    ``send_timeout`` cannot hold a stream forever (it may resume)."""

    ping_interval: float = 15.0
    send_timeout: float | None = 30.0
    shutdown_grace: float = 3.0
    resume_grace: float = 0.0
    retention: float = 300.0
    max_readers: int = 8
    max_response_time: float | None = 1800.0

    def __post_init__(self) -> None:
        if min(self.ping_interval, self.shutdown_grace, self.resume_grace, self.retention) < 0:
            raise ConfigError("ping_interval, grace periods and retention must not be negative")
        if self.max_readers < 1:
            raise ConfigError("max_readers must be at least 1")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a mount, by group. Build it with :meth:`from_options`."""

    requests: RequestPolicy = field(default_factory=RequestPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    streams: StreamOptions = field(default_factory=StreamOptions)

    @classmethod
    def from_options(cls, **options: Any) -> Settings:
        """Settings from flat keyword arguments (each a field name of one group)."""
        settings = cls()
        for group_name in _GROUPS:
            group = getattr(settings, group_name)
            names = {f.name for f in fields(group)}
            mine = {k: options.pop(k) for k in list(options) if k in names}
            if mine:
                settings = replace(settings, **{group_name: replace(group, **mine)})
        if options:
            raise ConfigError(f"unknown setting(s): {sorted(options)}")
        return settings

    def options(self) -> dict[str, Any]:
        """The flat ``{field: value}`` view (the inverse of :meth:`from_options`)."""
        out: dict[str, Any] = {}
        for group_name in _GROUPS:
            group = getattr(self, group_name)
            out.update({f.name: getattr(group, f.name) for f in fields(group)})
        return out


_GROUPS = ("requests", "timeouts", "retry", "streams")
DEFAULTS = Settings()


# --- the environment -------------------------------------------------------------------------


def parse_seconds(name: str, raw: str) -> float | None:
    """Seconds; ``""``, ``none`` and ``off`` mean ``None`` (switched off)."""
    if raw.strip().lower() in ("", "none", "off"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number, not negative")
    return value


def parse_int(name: str, raw: str, *, minimum: int = 0, hint: str = "") -> int:
    """A whole number from the environment variable ``name``, at least ``minimum``."""
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        if minimum == 0:
            raise ConfigError(f"{name} must not be negative")
        raise ConfigError(f"{name} must be at least {minimum}{hint}")
    return value


def parse_switch(name: str, raw: str) -> bool:
    """On or off: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 0 or 1, got {raw!r}")


def _int(name: str, raw: str) -> int:
    return parse_int(name, raw)


def _duration(name: str, raw: str) -> float:
    # A period that cannot be "off": off means zero.
    return parse_seconds(name, raw) or 0.0


def _list(_name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _text(_name: str, raw: str) -> str:
    return raw


#: ``LLM_SSE_<suffix>`` → (setting, parser). The one table of environment settings; access,
#: provider and store variables are read by their own modules through the parsers above.
ENVIRONMENT: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "MODEL": ("model", _text),
    "MODELS": ("models", _list),
    "SYSTEM_PROMPT": ("system_prompt", _text),
    "MAX_TOKENS": ("max_tokens", _int),
    "MAX_BODY_BYTES": ("max_body_bytes", _int),
    "MAX_MESSAGES": ("max_messages", _int),
    "MAX_CHARS": ("max_chars", _int),
    "MAX_IMAGES": ("max_images", _int),
    "MAX_IMAGE_BYTES": ("max_image_bytes", _int),
    "PING_INTERVAL": ("ping_interval", _duration),
    "SEND_TIMEOUT": ("send_timeout", parse_seconds),
    "CONNECT_TIMEOUT": ("connect_timeout", parse_seconds),
    "FIRST_TOKEN_TIMEOUT": ("first_token_timeout", parse_seconds),
    "IDLE_TIMEOUT": ("idle_timeout", parse_seconds),
    "TOTAL_TIMEOUT": ("total_timeout", parse_seconds),
    "RETRIES": ("retries", _int),
    "SHUTDOWN_GRACE": ("shutdown_grace", _duration),
    "RESUME_GRACE": ("resume_grace", _duration),
    "RETENTION": ("retention", _duration),
    "MAX_READERS": ("max_readers", _int),
    "MAX_RESPONSE_TIME": ("max_response_time", parse_seconds),
    "BODY_TIMEOUT": ("body_timeout", parse_seconds),
    "ALLOWED_ORIGINS": ("allowed_origins", _list),
}


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings from the ``LLM_SSE_<NAME>`` variables that are set, as keyword arguments."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for suffix, (setting, parse) in ENVIRONMENT.items():
        name = f"LLM_SSE_{suffix}"
        raw = env.get(name)
        if raw is not None and raw != "":
            out[setting] = parse(name, raw)
    return out
