"""``python -m bench``: relay benchmark (see bench/README.md for what each figure means)."""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from . import report
from .runner import Config, run
from .stats import summarize_streams
from .variants import DEFAULT, VARIANTS

RESULTS = Path(__file__).resolve().parent / "results"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def parse(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="~30 s run: N in 1,16,64, one round")
    p.add_argument(
        "--variants",
        default=",".join(DEFAULT),
        help=f"comma list from {', '.join(VARIANTS)} (default: {', '.join(DEFAULT)})",
    )
    p.add_argument("--concurrency", type=_ints, help="comma list (default 1,16,64,256)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per concurrency (default 2)")
    p.add_argument("--ramp", type=_ints, help="ramp levels (default 64,128,256,512,1024)")
    p.add_argument(
        "--hold", type=_ints, help="streams held open for the memory figure (16,64,256,1024)"
    )
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--http", choices=("h11", "httptools"), default="h11")
    p.add_argument(
        "--name", default="latest", help="results file stem under bench/results (default latest)"
    )
    args = p.parse_args(argv)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if args.loop == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            p.error("--loop uvloop: uvloop is not installed")
    if args.http == "httptools":
        try:
            import httptools  # noqa: F401
        except ImportError:
            p.error("--http httptools: httptools is not installed")
    quick = args.quick
    return Config(
        variants=variants,
        levels=args.concurrency or ((1, 16, 64) if quick else (1, 16, 64, 256)),
        rounds=args.rounds or (1 if quick else 2),
        ramp=args.ramp or ((64, 128) if quick else (64, 128, 256, 512, 1024)),
        hold=tuple(sorted(args.hold or ((16, 64) if quick else (16, 64, 256, 1024)))),
        min_streams=2 if quick else 4,
        timeout=20.0 if quick else 30.0,
        loop=args.loop,
        http=args.http,
        quick=quick,
        name=args.name,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so a SIGTERM also unwinds through the cleanup in run()


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        raw = run(cfg, say)
    except KeyboardInterrupt:
        say("interrupted; all bench processes stopped")
        return 130
    result: dict[str, Any] = {
        "config": asdict(cfg),
        "machine": report.machine(),
        "figures": report.figures(raw),
        "phases": {
            name: {
                n: [
                    {
                        **summarize_streams(p["streams"]),
                        "cpu_s": p["cpu_s"],
                        "wall_s": p["wall_s"],
                        "batches": p["batches"],
                    }
                    for p in phases
                ]
                for n, phases in by_n.items()
            }
            for name, by_n in raw["targets"].items()
        },
        "ramp": raw["ramp"],
        "memory": raw["memory"],
        "skipped": raw["skipped"],
        "elapsed_s": raw["elapsed_s"],
    }
    result["scaling"] = report.scaling(result)
    text = report.write(result, RESULTS, cfg.name)
    print(text)
    say(f"wrote {RESULTS / cfg.name}.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
