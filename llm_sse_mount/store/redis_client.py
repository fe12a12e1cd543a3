"""Turning a Redis URL into a ``redis.asyncio`` client, for one server or a Redis Cluster.

The stream store and the limit store both take a URL (or a client of the host's). A Redis
Cluster is named by its own scheme, so that one value (``LLM_SSE_STORE``) says everything and
both stores built from it agree::

    redis://host:6379/0            one server (or a proxy in front of several)
    rediss://host:6380/0           the same over TLS
    unix:///run/redis.sock         a local socket
    redis+cluster://host:7000      a Redis Cluster: ``redis.asyncio.RedisCluster``, seeded by
    rediss+cluster://host:7000     any one node (it discovers the others); TLS variant

``redis.asyncio.RedisCluster`` is the client to use for a cluster: it follows ``MOVED`` /
``ASK`` redirections and routes each command and script by its key's slot. The stores keep
every multi-key script's keys in one slot (a ``{stream id}`` hash tag; the limit scripts touch
one key each), so nothing else changes on a cluster. A cluster has database 0 only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from ..errors import ConfigError

if TYPE_CHECKING:
    import redis.asyncio
    import redis.asyncio.cluster

__all__ = [
    "CLUSTER_SCHEMES",
    "MAX_CONNECTIONS",
    "REDIS_SCHEMES",
    "AnyRedis",
    "is_redis_url",
    "redis_client",
]

#: Schemes of a Redis Cluster URL, mapped to the scheme ``RedisCluster.from_url`` takes.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
#: Connections a client made here may open (per node, on a cluster). Every open stream's
#: reader holds one for its blocking XREAD, and redis-py (8) caps a pool at 100 by default:
#: streams past ~64 then failed with MaxConnectionsError (the benchmark found it). Redis's own
#: client limit (``maxclients``, 10,000 by default) is the real bound.
MAX_CONNECTIONS = 10_000
#: Every scheme a store URL may have.
REDIS_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)

#: Either client: the stores only use commands and scripts both provide.
AnyRedis = Union["redis.asyncio.Redis", "redis.asyncio.cluster.RedisCluster"]


def is_redis_url(url: str) -> bool:
    """Whether ``url`` names a Redis server or cluster (by its scheme)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in REDIS_SCHEMES


def redis_client(url: str, *, socket_timeout: float, connect_timeout: float) -> AnyRedis:
    """A client for ``url``: ``RedisCluster`` for a ``redis+cluster://`` URL, else ``Redis``."""
    import redis.asyncio
    import redis.asyncio.cluster

    scheme, sep, rest = url.partition("://")
    cluster_scheme = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    if cluster_scheme is None:
        return redis.asyncio.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            max_connections=MAX_CONNECTIONS,
        )
    seed = f"{cluster_scheme}://{rest}"
    path = rest.partition("/")[2].partition("?")[0]
    if path not in ("", "0"):
        # The URL is not echoed: it may carry a password.
        raise ConfigError("a Redis Cluster has database 0 only; drop the /<db> from the URL")
    return redis.asyncio.cluster.RedisCluster.from_url(
        seed,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        max_connections=MAX_CONNECTIONS,
    )
