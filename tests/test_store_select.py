"""``LLM_SSE_STORE`` picks the stream store in ``LLMMount.from_env``."""

from __future__ import annotations

import pytest

from llm_sse_mount import LLMMount, MemoryStore
from llm_sse_mount.errors import ConfigError


def test_memory_is_the_default_and_takes_the_retention() -> None:
    for env in ({}, {"LLM_SSE_STORE": "memory"}):
        mount = LLMMount.from_env({**env, "LLM_SSE_RETENTION": "42"})
        assert isinstance(mount.store, MemoryStore)
        assert mount.store.retention == 42


def test_a_redis_url_selects_the_redis_store_with_its_settings() -> None:
    pytest.importorskip("redis")
    from llm_sse_mount.store.redis import RedisStore

    mount = LLMMount.from_env(
        {
            "LLM_SSE_STORE": "redis://127.0.0.1:6379/3",
            "LLM_SSE_STORE_PREFIX": "app1:",
            "LLM_SSE_STORE_LEASE_TTL": "2.5",
            "LLM_SSE_STORE_MAX_FRAMES": "500",
            "LLM_SSE_RETENTION": "60",
            "LLM_SSE_RESUME_GRACE": "10",
        }
    )
    store = mount.store
    assert isinstance(store, RedisStore)
    assert (store.prefix, store.lease_ttl, store.max_frames, store.retention) == (
        "app1:",
        2.5,
        500,
        60,
    )
    assert mount.settings.streams.resume_grace == 10


def test_an_explicit_store_wins_over_the_environment() -> None:
    store = MemoryStore()
    assert LLMMount.from_env({"LLM_SSE_STORE": "redis://x"}, store=store).store is store


@pytest.mark.parametrize(
    "env",
    [
        {"LLM_SSE_STORE": "postgres://db"},
        {"LLM_SSE_STORE": "redis://h", "LLM_SSE_STORE_LEASE_TTL": "soon"},
        {"LLM_SSE_STORE": "redis://h", "LLM_SSE_STORE_LEASE_TTL": "0"},
    ],
)
def test_bad_store_settings_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        LLMMount.from_env(env)
