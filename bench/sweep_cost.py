"""``python -m bench.sweep_cost``: what creating a stream costs with many finished streams kept.

A memory store keeps every finished stream for ``retention`` seconds (300 by default), so a busy
worker holds thousands of them: 50 new streams a second keep 15,000. Sweeping expired streams
on every ``create`` walked all of them each time; the store now sweeps at most once per
``SWEEP_EVERY``. This prints the CPU time per ``create`` both ways (``SWEEP_EVERY = 0`` is the
old behaviour), in one process, with no network.
"""

from __future__ import annotations

import argparse
import time

import anyio

from llm_sse_mount.events import Done, Start, TextDelta
from llm_sse_mount.store import memory
from llm_sse_mount.store.memory import MemoryStore


async def _per_create(kept: int, creates: int, sweep_every: float) -> float:
    memory.SWEEP_EVERY = sweep_every
    store = MemoryStore(retention=300.0)
    for i in range(kept):
        sid = f"kept{i}"
        await store.create(sid)
        await store.append(sid, [Start(sid, "m"), TextDelta("x"), Done("stop")])
    start = time.process_time()
    for i in range(creates):
        await store.create(f"new{i}")
    return (time.process_time() - start) / creates


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.sweep_cost", description=__doc__)
    p.add_argument("--kept", type=int, default=15_000, help="finished streams kept")
    p.add_argument("--creates", type=int, default=2_000)
    args = p.parse_args()
    default = memory.SWEEP_EVERY
    for label, every in (("sweep on every create (before)", 0.0), ("sweep once a second", default)):
        cost = anyio.run(_per_create, args.kept, args.creates, every)
        print(f"{label:32} {cost * 1e6:9.1f} µs per create with {args.kept} finished streams kept")


if __name__ == "__main__":
    main()
