"""``python -m bench.tracemem``: where a relay's memory per open stream goes (tracemalloc).

Runs a relay variant under ``tracemalloc`` (its factory wrapped by :func:`create_app`, which adds
``POST /__tracemalloc/{start,diff}``), takes a snapshot after a one-stream warm-up, holds ``--n``
streams open mid-answer (the memory phase of ``make bench``) and prints the allocations that
grew, grouped by the line that made them, in bytes per open stream. tracemalloc slows the relay
down, so this says *where* memory goes, not how fast anything is.

    python -m bench.tracemem --variant mount-native --n 128
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path
from typing import Any

from .procs import Procs
from .runner import Config, Runner
from .variants import VARIANTS

RESULTS = Path(__file__).resolve().parent / "results"


def create_app() -> Any:
    """The factory ``BENCH_INNER_APP`` (``module:function``) with the tracemalloc routes."""
    module, _, name = os.environ["BENCH_INNER_APP"].partition(":")
    inner = getattr(importlib.import_module(module), name)()
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "12")))
    base: list[tracemalloc.Snapshot] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/__tracemalloc/"):
            await inner(scope, receive, send)
            return
        if path.endswith("/start"):
            base[:] = [tracemalloc.take_snapshot()]
            body = b"{}"
        else:
            n = int(path.rsplit("/", 1)[1])
            if os.environ.get("BENCH_TRACEMALLOC_COLLECT") == "1":
                gc.collect()  # what is live, without cyclic garbage the collector has not reached
            body = json.dumps(_diff(base[0], tracemalloc.take_snapshot(), n)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


def _diff(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int) -> dict[str, Any]:
    skip = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = after.filter_traces(skip).compare_to(before.filter_traces(skip), "traceback")
    total = sum(s.size_diff for s in stats)
    rows = []
    for s in stats[:300]:
        frames = [f"{_short(f.filename)}:{f.lineno}" for f in s.traceback]
        rows.append({"per_stream": s.size_diff / n, "count": s.count_diff, "where": frames})
    # Who owns each allocation: the innermost frame of our code (the mount or the bench app),
    # else the innermost frame of a third-party package, else the stdlib.
    owners: dict[str, float] = {}
    for s in stats:
        names = [_short(f.filename) + ":" + str(f.lineno) for f in s.traceback]
        ours = [x for x in names if x.startswith(("llm_sse_mount/", "bench/"))]
        pkgs = [x for x in names if "/" in x and not x.startswith(("asyncio/", "json/"))]
        owner = (ours or pkgs or names)[-1]
        owners[owner] = owners.get(owner, 0.0) + s.size_diff / n
    by_owner = sorted(owners.items(), key=lambda kv: -kv[1])[:40]
    return {"per_stream_total": total / n, "top": rows, "by_owner": by_owner}


def _short(path: str) -> str:
    for marker in ("site-packages/", "wt-bench/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _post(port: int, path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tracemem", description=__doc__)
    p.add_argument(
        "--variant", default="mount-native", choices=[v for v in VARIANTS if VARIANTS[v].app]
    )
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--depth", type=int, default=3, help="frames of each traceback shown")
    p.add_argument("--collect", action="store_true", help="gc.collect() before the second snapshot")
    p.add_argument("--md", type=Path, help="also write the by-owner table as markdown here")
    p.add_argument("--grep", default="", help="show only the sites whose traceback has this")
    args = p.parse_args(argv)
    variant = VARIANTS[args.variant]
    assert variant.app is not None
    wrapped = type(variant)(
        **{
            **variant.__dict__,
            "app": "bench.tracemem:create_app",
            "env": {
                **variant.env,
                "BENCH_INNER_APP": variant.app,
                "BENCH_TRACEMALLOC_COLLECT": "1" if args.collect else "0",
            },
        }
    )
    cfg = Config(variants=(), levels=(), rounds=1, ramp=(), hold=(args.n,), timeout=60.0)
    logdir = RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    with Procs(logdir) as procs:
        runner = Runner(cfg, procs, lambda line: print(line, file=sys.stderr))
        target, reason = runner.start_relay(wrapped, "/hold/v1", "tracemem")
        if target is None:
            print(f"relay did not start: {reason}", file=sys.stderr)
            return 1
        runner.loadgen.request(runner.command(target, 2, cmd="hold", hold_s=0.0), 60)
        runner.loadgen.read(60)
        time.sleep(0.5)
        _post(target.port, "/__tracemalloc/start")
        runner.loadgen.send(runner.command(target, args.n, cmd="hold", hold_s=3.0))
        ready = runner.loadgen.read(90)
        diff = _post(target.port, f"/__tracemalloc/diff/{ready['open']}")
        runner.loadgen.read(90)
        runner.loadgen.send({"cmd": "quit"})
    print(
        f"{args.variant}: {ready['open']} open, traced {diff['per_stream_total'] / 1024:.1f} KiB/stream"
    )
    if args.md:
        lines = [
            f"# tracemalloc: {args.variant}, {ready['open']} streams held open",
            "",
            f"Command: `python -m bench.tracemem --variant {args.variant} --n {args.n}"
            f"{' --collect' if args.collect else ''}`. Traced growth: "
            f"{diff['per_stream_total'] / 1024:.1f} KiB per open stream.",
            "",
            "| owner (innermost frame of our code, else of a package) | bytes per stream |",
            "|---|--:|",
            *(f"| `{o}` | {b:.0f} |" for o, b in diff["by_owner"][:25] if abs(b) >= 64),
        ]
        args.md.write_text("\n".join(lines) + "\n")
    print("by owner (innermost frame of our code, else of a package):")
    for owner, size in diff["by_owner"]:
        if abs(size) >= 64:
            print(f"{size:8.0f} B  {owner}")
    print("largest single sites:")
    for row in diff["top"][: 300 if args.grep else 40]:
        if args.grep and not any(args.grep in f for f in row["where"]):
            continue
        if abs(row["per_stream"]) < 64:
            continue
        where = " < ".join(reversed(row["where"][-args.depth :]))
        print(f"{row['per_stream']:8.0f} B {row['count']:6d}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
