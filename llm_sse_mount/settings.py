"""Mount settings: one frozen dataclass, and the ``LLM_SSE_*`` environment variables that
``LLMMount.from_env()`` reads into it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["CLIENT_PARAMS", "MountSettings", "env_overrides", "parse_int"]

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


@dataclass(frozen=True, slots=True)
class MountSettings:
    """Every knob of a mount (see ``LLMMount`` for what each one means)."""

    model: str | None
    models: tuple[str, ...]
    system_prompt: str | None
    max_tokens: int | None
    client_params: frozenset[str]
    max_body_bytes: int
    max_messages: int
    max_chars: int
    ping_interval: float
    send_timeout: float | None
    connect_timeout: float | None
    first_token_timeout: float | None
    idle_timeout: float | None
    total_timeout: float | None
    retries: int
    shutdown_grace: float
    resume_grace: float
    retention: float
    #: Images per request, and decoded bytes per ``data:`` URI image (400 beyond).
    max_images: int = 16
    max_image_bytes: int = 5 * 1024 * 1024


def _seconds(name: str, raw: str) -> float | None:
    if raw.strip().lower() in ("", "none", "off"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
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


def _int(name: str, raw: str) -> int:
    return parse_int(name, raw)


def _list(_name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _text(_name: str, raw: str) -> str:
    return raw


# environment variable suffix → (constructor argument, parser)
_ENV: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "MODEL": ("model", _text),
    "MODELS": ("models", _list),
    "SYSTEM_PROMPT": ("system_prompt", _text),
    "MAX_TOKENS": ("max_tokens", _int),
    "MAX_BODY_BYTES": ("max_body_bytes", _int),
    "MAX_MESSAGES": ("max_messages", _int),
    "MAX_CHARS": ("max_chars", _int),
    "PING_INTERVAL": ("ping_interval", _seconds),
    "SEND_TIMEOUT": ("send_timeout", _seconds),
    "CONNECT_TIMEOUT": ("connect_timeout", _seconds),
    "FIRST_TOKEN_TIMEOUT": ("first_token_timeout", _seconds),
    "IDLE_TIMEOUT": ("idle_timeout", _seconds),
    "TOTAL_TIMEOUT": ("total_timeout", _seconds),
    "RETRIES": ("retries", _int),
    "SHUTDOWN_GRACE": ("shutdown_grace", _seconds),
    "RESUME_GRACE": ("resume_grace", _seconds),
    "RETENTION": ("retention", _seconds),
    "MAX_IMAGES": ("max_images", _int),
    "MAX_IMAGE_BYTES": ("max_image_bytes", _int),
}


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Constructor keyword arguments from ``LLM_SSE_<NAME>`` variables that are set."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for suffix, (arg, parse) in _ENV.items():
        name = f"LLM_SSE_{suffix}"
        raw = env.get(name)
        if raw is not None and raw != "":
            value = parse(name, raw)
            if value is None and arg in (
                "ping_interval",
                "shutdown_grace",
                "resume_grace",
                "retention",
            ):
                value = 0.0
            out[arg] = value
    return out
