"""The relay: open the upstream, with retries and fallbacks, before anything reaches the client.

Nothing here knows a vendor or a client protocol: a provider gives an
:class:`~llm_sse_mount.providers.base.UpstreamStream` of normalized events; the producer
(:mod:`.producer`) pumps it into the store.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import anyio
import httpx

from ..errors import LLMSSEError, UpstreamTimeout
from ..providers.base import Provider, UpstreamStream
from ..providers.capabilities import require_capabilities
from ..redaction import redact
from ..request import ChatRequest
from ..settings import RetryPolicy, Timeouts

__all__ = ["Opened", "Relay", "retry_delay"]

logger = logging.getLogger("llm_sse_mount")


@dataclass(frozen=True, slots=True)
class Opened:
    """An upstream that answered: the provider that served it (a fallback, maybe) and the model
    it was asked for."""

    upstream: UpstreamStream
    provider: Provider
    model: str
    #: Failed attempts before this one (over every provider tried), and providers skipped.
    retries: int = 0
    fallbacks: int = 0


def retry_delay(policy: RetryPolicy, attempt: int, retry_after: float | None) -> float:
    """Seconds before retry ``attempt`` (0-based): the upstream's ``Retry-After`` when given,
    else exponential backoff with full jitter (it spreads a burst of retries from many
    streams)."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0, min(policy.max_backoff, policy.backoff * 2**attempt))


def capable(provider: Provider, request: ChatRequest) -> bool:
    """Whether ``provider`` can honour everything ``request`` asks for."""
    try:
        require_capabilities(provider, request)
    except LLMSSEError:
        return False
    return True


class Relay:
    """Opens upstream streams for one mount: ``providers[0]`` first, then the fallbacks."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        client: httpx.AsyncClient | None,
        timeouts: Timeouts,
        retry: RetryPolicy,
    ) -> None:
        self.providers = tuple(providers)
        self.client = client
        self.timeouts = timeouts
        self.retry = retry

    def secrets(self) -> tuple[str, ...]:
        """Every credential any provider sends (for redaction)."""
        return tuple(s for p in self.providers for s in p.secrets())

    async def open(self, request: ChatRequest, client: httpx.AsyncClient) -> Opened:
        """Open the first provider that answers, retrying retryable failures with backoff.
        Raises the last error when every attempt failed (the route turns it into HTTP)."""
        last: LLMSSEError | None = None
        failed = 0
        total = self.timeouts.total_timeout
        deadline = None if total is None else time.monotonic() + total
        for index, provider in enumerate(self.providers):
            req = request
            if index > 0 and provider.default_model:
                req = replace(request, model=provider.default_model)
            if index > 0 and not capable(provider, req):
                continue  # a fallback must not answer without the images or the schema
            http = provider.client or self.client or client
            for attempt in range(self.retry.retries + 1):
                try:
                    with anyio.fail_after(self.timeouts.first_token_timeout):
                        upstream = await provider.open(req, http)
                    return Opened(upstream, provider, req.model, failed, index)
                except TimeoutError:
                    last = UpstreamTimeout("the upstream did not answer in time")
                except LLMSSEError as exc:
                    last = exc
                    last.message = redact(last.message, provider.secrets())
                except Exception as exc:  # a provider bug: a clean error, not a bare 500
                    logger.exception("upstream %s: opening failed", provider.name)
                    last = LLMSSEError(
                        f"the relay failed opening the upstream ({type(exc).__name__})",
                        code="internal_error",
                    )
                failed += 1
                logger.warning(
                    "upstream %s attempt %d failed: %s (%s)",
                    provider.name,
                    attempt + 1,
                    last.code,
                    last.message,
                )
                if not last.retryable or attempt == self.retry.retries:
                    break
                wait = retry_delay(self.retry, attempt, last.retry_after)
                if wait > self.retry.max_backoff or (
                    deadline is not None and time.monotonic() + wait > deadline
                ):
                    break  # Retry-After longer than we are willing to hold the client
                await anyio.sleep(wait)
            if last is not None and not last.retryable:
                break  # a refused request (400, auth) would be refused by a fallback too
        assert last is not None
        raise last
