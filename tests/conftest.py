"""Shared fixtures. Tests that need Redis, Chromium or Node skip with a reason when those are
missing, and fail instead when ``LLM_SSE_REQUIRE_ALL=1`` (CI sets it), so CI always runs them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .support.fixtures import fake_upstream, serve_app  # noqa: F401
from .support.redis_cluster import RedisClusterInfo, running_cluster

REQUIRE_ALL = os.environ.get("LLM_SSE_REQUIRE_ALL") == "1"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("LLM_SSE_CHROMIUM", "/usr/bin/chromium")


def unavailable(reason: str) -> None:
    """Skip, or fail when CI demands every test runs."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (LLM_SSE_REQUIRE_ALL=1 turns this skip into a failure)")
    pytest.skip(reason)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        import redis
    except ImportError:
        unavailable("the redis package is not installed")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        unavailable(f"no Redis answers at REDIS_URL={REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterInfo]:
    """A real three-master Redis Cluster on loopback for the whole session (see
    ``tests/support/redis_cluster.py``); its ``url`` is a ``redis+cluster://`` store URL."""
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("the redis package is not installed")
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        unavailable("redis-server and redis-cli are needed for the Redis Cluster tests")
    with running_cluster() as info:
        yield info


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        unavailable("the playwright package is not installed")
    return CHROMIUM


@pytest.fixture(scope="session")
def node_bin() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        unavailable("Node.js and npm are needed for this test")
    assert node is not None
    return node


@pytest.fixture
def artifacts_dir() -> Iterator[str]:
    path = os.path.join(os.path.dirname(__file__), "artifacts")
    os.makedirs(path, exist_ok=True)
    return path
