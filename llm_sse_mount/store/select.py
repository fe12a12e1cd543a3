"""Choosing a stream store from the environment (``LLMMount.from_env``)."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigError
from ..settings import parse_int, parse_seconds
from .base import StreamStore
from .memory import MemoryStore
from .redis_client import is_redis_url

__all__ = ["store_from_env"]


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    value = parse_seconds(name, raw) if raw else default
    if not value:  # None ("off") or 0: a store's periods must be positive
        raise ConfigError(f"{name} must be positive")
    return value


def store_from_env(env: Mapping[str, str], *, retention: float = 300.0) -> StreamStore:
    """``LLM_SSE_STORE``: ``memory`` or unset → :class:`MemoryStore` (one process);
    ``redis://…`` / ``rediss://…`` / ``unix://…`` → :class:`~.redis.RedisStore`;
    ``redis+cluster://…`` / ``rediss+cluster://…`` → the same on a Redis Cluster
    (see :mod:`.redis_client`). Tuned by
    ``LLM_SSE_STORE_PREFIX`` (default ``llm_sse:``), ``LLM_SSE_STORE_LEASE_TTL`` (seconds,
    default 4) and ``LLM_SSE_STORE_MAX_FRAMES`` (default 100000)."""
    kind = env.get("LLM_SSE_STORE", "").strip()
    raw_frames = env.get("LLM_SSE_STORE_MAX_FRAMES", "").strip()
    name = "LLM_SSE_STORE_MAX_FRAMES"
    max_frames = parse_int(name, raw_frames, minimum=1) if raw_frames else 100_000
    if kind in ("", "memory"):
        return MemoryStore(retention=retention, max_frames=max_frames)
    if not is_redis_url(kind):
        # The value is not echoed: a store URL may carry a password.
        raise ConfigError(
            "LLM_SSE_STORE must be 'memory' or a redis:// / rediss:// / redis+cluster:// URL"
        )
    try:
        from .redis import RedisStore
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            "LLM_SSE_STORE is a Redis URL but redis is not installed: "
            "pip install 'llm_sse_mount[redis]'"
        ) from None
    return RedisStore(
        kind,
        prefix=env.get("LLM_SSE_STORE_PREFIX") or "llm_sse:",
        retention=retention,
        max_frames=max_frames,
        lease_ttl=_number(env, "LLM_SSE_STORE_LEASE_TTL", 4.0),
    )
