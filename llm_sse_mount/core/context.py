"""The stream context: everything the serving core needs, built once by the assembly.

Nothing below the assembly sees ``LLMMount``; it gets this frozen object instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..providers.base import Provider
from ..settings import Settings
from ..store.base import StreamStore
from .access import Access
from .http_client import ClientPool
from .observe import NOOP, StreamObserver
from .records import OnComplete
from .relay import Relay
from .shutdown import ShutdownSignal

__all__ = ["StreamContext"]


@dataclass(frozen=True, slots=True, eq=False)
class StreamContext:
    """One mount's parts, as the core and the protocols use them."""

    settings: Settings
    provider: Provider
    store: StreamStore
    relay: Relay
    pool: ClientPool
    access: Access
    shutdown: ShutdownSignal
    on_complete: OnComplete | None = None
    #: Telemetry: told of every stream's steps (the no-op when the mount has none).
    observer: StreamObserver = NOOP
