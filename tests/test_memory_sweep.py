"""The memory store sweeps expired streams at most once per ``SWEEP_EVERY``, never per create:
a burst of new streams must not walk every kept stream once each (O(N x kept))."""

from __future__ import annotations

from collections.abc import ItemsView

import anyio
import pytest

from llm_sse_mount.events import Done, Start, TextDelta
from llm_sse_mount.store import memory
from llm_sse_mount.store.memory import MemoryStore, _Stream

pytestmark = pytest.mark.anyio


class _CountingDict(dict[str, _Stream]):
    """The store's stream table, counting the full walks a sweep makes."""

    walks = 0

    def items(self) -> ItemsView[str, _Stream]:
        self.walks += 1
        return super().items()


async def _finished(store: MemoryStore, stream_id: str) -> None:
    await store.create(stream_id)
    await store.append(stream_id, [Start(stream_id, "m"), TextDelta("x"), Done("stop")])


async def test_a_burst_of_creates_walks_the_streams_once() -> None:
    store = MemoryStore(retention=60.0)
    table = _CountingDict()
    store._streams = table
    for i in range(500):
        await store.create(f"s{i}")
    assert len(store) == 500
    assert table.walks == 1


async def test_expired_streams_are_swept_once_the_interval_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "SWEEP_EVERY", 0.05)
    store = MemoryStore(retention=0.05)
    await _finished(store, "old")
    await anyio.sleep(0.12)
    await store.create("new")
    assert len(store) == 1
    assert not await store.exists("old")


async def test_an_expired_stream_is_gone_even_before_a_sweep_removes_it() -> None:
    store = MemoryStore(retention=0.05)
    await _finished(store, "old")
    await anyio.sleep(0.1)
    assert len(store) == 1  # expired, not swept yet (no create since)
    assert await store.info("old") is None
    assert not await store.exists("old")
