"""Choosing a stream store from the environment (``LLMMount.from_env``)."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigError
from .base import StreamStore
from .memory import MemoryStore
from .redis_client import is_redis_url

__all__ = ["store_from_env"]


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
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
    max_frames = int(_number(env, "LLM_SSE_STORE_MAX_FRAMES", 100_000))
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
