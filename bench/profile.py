"""``python -m bench.profile``: a flame graph of one relay variant under load (py-spy).

Starts the fake upstream, one relay of ``--variant`` and the load generator (as ``make bench``
does, all on 127.0.0.1), attaches ``py-spy record`` to the relay, runs ``--rounds`` phases of
``--n`` concurrent streams, and writes an SVG flame graph (``--out``). py-spy samples from
outside the process, so the relay runs at full speed and its CPU per token is printed next to
the graph. Needs ``pip install py-spy`` and the right to ptrace the relay (root, or
``kernel.yama.ptrace_scope = 0``).

    python -m bench.profile --variant mount-native --n 256 --out bench/results/flame-native.svg
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .procs import Procs
from .runner import Config, Runner
from .stats import summarize_streams
from .variants import VARIANTS

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument(
        "--variant", default="mount-native", choices=[v for v in VARIANTS if VARIANTS[v].app]
    )
    p.add_argument("--n", type=int, default=256, help="concurrent streams per phase")
    p.add_argument("--rounds", type=int, default=2, help="phases under the profiler")
    p.add_argument(
        "--warm",
        type=int,
        default=4,
        help="streams run before profiling (in batches of --n at most): a long-running relay "
        "keeps every finished stream for its retention, and some costs grow with them",
    )
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--http", choices=("h11", "httptools"), default="h11")
    p.add_argument(
        "--format",
        choices=("flamegraph", "raw", "speedscope"),
        default="flamegraph",
        help="py-spy output: an SVG flame graph, or collapsed stacks (raw) to grep",
    )
    p.add_argument("--out", type=Path, help="SVG path (default bench/results/flame-<variant>.svg)")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        p.error("py-spy is not installed (pip install py-spy)")
    out: Path = args.out or RESULTS / f"flame-{args.variant}.svg"
    cfg = Config(
        variants=(args.variant,),
        levels=(args.n,),
        rounds=args.rounds,
        ramp=(),
        hold=(),
        loop=args.loop,
        http=args.http,
    )
    logdir = RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    with Procs(logdir) as procs:
        runner = Runner(cfg, procs, lambda line: print(line, file=sys.stderr))
        target, reason = runner.start_relay(VARIANTS[args.variant], "/v1", "profile")
        if target is None or target.child is None:
            print(f"relay did not start: {reason}", file=sys.stderr)
            return 1
        left = args.warm  # warm-up: imports, the upstream client, finished streams kept
        while left > 0:
            runner.phase(target, min(left, args.n))
            left -= args.n
        spy = subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(target.child.pid),
                "--rate",
                str(args.rate),
                "--format",
                args.format,
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches
        tokens = 0
        cpu = 0.0
        try:
            for _ in range(args.rounds):
                phase = runner.phase(target, args.n)
                s = summarize_streams(phase["streams"])
                tokens += s["tokens"]
                cpu += phase["cpu_s"]["relay"]
                print(
                    f"N={args.n} gap p99 {s['gap_p99']} max {s['gap_max']} ms, "
                    f"errors {s['errors']}, {phase['cpu_s']['relay'] / max(s['tokens'], 1) * 1e6:.0f} µs/token",
                    file=sys.stderr,
                )
        finally:
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
        runner.loadgen.send({"cmd": "quit"})
    print(f"{args.variant}: {cpu / max(tokens, 1) * 1e6:.0f} µs/token under py-spy; wrote {out}")
    if spy.returncode not in (0, -signal.SIGINT) and not out.exists():
        print(err.decode(errors="replace"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
