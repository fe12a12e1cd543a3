"""The mount under test, built from the environment, as a uvicorn factory.

``BENCH_UPSTREAM_BASE`` is the fake upstream's OpenAI base URL (``http://127.0.0.1:PORT/v1``).
The same app serves every mount variant: ``POST /chat`` (native), ``POST /v1/chat/completions``
(OpenAI-compatible), ``POST /v1/responses``; the runner starts one process per variant.

Variant flags (environment):

- ``BENCH_STORE=redis``: a :class:`~llm_sse_mount.store.redis.RedisStore` on ``REDIS_URL``
  (default ``redis://127.0.0.1:6379/0``) under a key prefix unique to the process.
- ``BENCH_MOUNT_TELEMETRY=on``: OpenTelemetry (an SDK exporting nowhere), Prometheus and the
  JSON log line (see :func:`_telemetry`).
- ``BENCH_MOUNT_KEEPALIVE=N``: a client of ours with N idle upstream connections.

``python -m bench.mount_app --check`` exits 0 when the mount can be built, or prints the reason
it cannot and exits 1; the runner uses it to skip the mount variants with a clear line.
"""

from __future__ import annotations

import os
import sys
from typing import Any


class MountUnavailable(RuntimeError):
    """The ``llm_sse_mount`` package (or the API the bench needs) is not there yet."""


def create_app() -> Any:
    try:
        from llm_sse_mount import LLMMount
        from llm_sse_mount.providers.openai import OpenAICompatible
    except ImportError as exc:
        raise MountUnavailable(f"llm_sse_mount is not usable yet ({exc})") from exc
    base = os.environ.get("BENCH_UPSTREAM_BASE", "http://127.0.0.1:8001/v1")
    provider = OpenAICompatible(base_url=base, api_key="bench")
    # BENCH_MOUNT_KEEPALIVE=N gives the mount a client of ours with N idle upstream connections
    # (0: a new connection per stream), to measure what connection reuse costs.
    keepalive = os.environ.get("BENCH_MOUNT_KEEPALIVE")
    client = None
    if keepalive is not None:
        import httpx

        client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, read=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=int(keepalive)),
        )
    extra: dict[str, Any] = {}
    if os.environ.get("BENCH_STORE") == "redis":
        extra["store"] = _redis_store()
    return LLMMount(
        provider=provider,
        model="bench-model",
        ping_interval=15,
        http_client=client,
        **_telemetry(os.environ.get("BENCH_MOUNT_TELEMETRY", "off")),
        **extra,
    )


def _redis_store() -> Any:
    try:
        from llm_sse_mount.store.redis import RedisStore
    except ImportError as exc:
        raise MountUnavailable(f"the Redis store is not usable ({exc})") from exc
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    # A short retention: the bench writes ~10^5 frames a run, and Redis is shared.
    return RedisStore(url, prefix=f"bench:{os.getpid()}:", retention=30.0)


def _telemetry(mode: str) -> dict[str, Any]:
    """``BENCH_MOUNT_TELEMETRY=on``: OpenTelemetry (an SDK exporting nowhere), Prometheus and
    the JSON log line (written to /dev/null), to measure what telemetry costs a relay; ``off``
    (default): none of it."""
    if mode == "off":
        return {"otel": False}
    if mode != "on":
        raise MountUnavailable(f"BENCH_MOUNT_TELEMETRY must be on or off, not {mode!r}")
    import logging

    from .telemetry_cost import _otel

    logger = logging.getLogger("llm_sse_mount.streams")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    return {"observers": [_otel()], "metrics": True, "log_format": "json"}


def main() -> None:
    if sys.argv[1:] != ["--check"]:
        sys.exit("usage: python -m bench.mount_app --check")
    try:
        create_app()
    except Exception as exc:  # any failure to build means "skip", with the reason shown
        print(f"{type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
