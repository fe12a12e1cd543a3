"""Orchestration: start the processes, run the phases interleaved, collect raw figures.

Phases, in order:

1. probe: one tiny phase per variant (also the warm-up); a variant whose app cannot be built or
   whose endpoint answers an error is skipped with its reason.
2. matrix: for each concurrency, ``rounds`` rounds; each round runs every variant once, the order
   rotated per round, so machine noise hits all variants alike. Relay CPU is read with psutil
   before and after each phase (one relay process per variant, so the delta is that variant's).
3. ramp: per variant, rising concurrency until the max inter-token gap reaches ``GAP_LIMIT_MS``
   (levels already measured in the matrix are reused, not rerun).
4. memory: per relay variant, a fresh process on the upstream's long, slow ``/hold/v1`` profile;
   idle RSS after a one-stream warm-up, then RSS with each level of ``hold`` streams open
   mid-answer, ascending.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .procs import ROOT, LoadGen, Procs, free_port
from .stats import EXPECTED_TOKENS, summarize_streams
from .variants import MOUNT, VARIANTS, Variant

__all__ = ["GAP_LIMIT_MS", "VARIANTS", "Config", "Runner", "run"]

GAP_LIMIT_MS = 200.0  # 10x the upstream's 20 ms pacing


@dataclass(frozen=True)
class Config:
    variants: tuple[str, ...]
    levels: tuple[int, ...]
    rounds: int
    ramp: tuple[int, ...]
    hold: tuple[int, ...]  # ascending stream counts held open in one fresh relay
    hold_s: float = 1.5
    min_streams: int = 4  # small concurrencies run sequential batches to get this many streams
    timeout: float = 30.0  # per stream
    loop: str = "asyncio"
    http: str = "h11"
    quick: bool = False
    name: str = "latest"  # results file stem


@dataclass
class Target:
    variant: Variant
    port: int
    child: subprocess.Popen[bytes] | None  # None for direct
    phases: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


class Runner:
    def __init__(self, cfg: Config, procs: Procs, say: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.procs = procs
        self.say = say
        self.up_port = free_port()
        self.upstream = procs.start(
            # A slow hold profile, so 1,024 held streams do not saturate the relay: the memory
            # figure is of open streams, not of a backlog of frames.
            "upstream",
            ["-m", "bench.upstream", "--port", str(self.up_port), "--hold-interval-ms", "250"],
        )
        reason = procs.wait_listening(self.upstream, self.up_port)
        if reason:
            raise RuntimeError(f"fake upstream did not start: {reason}")
        self.loadgen = LoadGen(procs)
        self.targets: dict[str, Target] = {}
        self.skipped: dict[str, str] = {}

    # processes ---------------------------------------------------------------------------
    def start_relay(
        self, variant: Variant, upstream_path: str, tag: str
    ) -> tuple[Target | None, str]:
        assert variant.app is not None
        port = free_port()
        argv = [
            "-m",
            "uvicorn",
            variant.app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop" if variant.standard else self.cfg.loop,
            "--http",
            "httptools" if variant.standard else self.cfg.http,
            "--log-level",
            "warning",
            "--no-access-log",
            "--backlog",
            "4096",
            "--timeout-graceful-shutdown",
            "2",
        ]
        env = {
            "BENCH_UPSTREAM_BASE": f"http://127.0.0.1:{self.up_port}{upstream_path}",
            **variant.env,
        }
        child = self.procs.start(f"{variant.name}-{tag}", argv, env=env)
        reason = self.procs.wait_listening(child, port)
        if reason:
            self.procs.stop(child)
            return None, reason
        return Target(variant, port, child), ""

    def unavailable(self, variant: Variant) -> str | None:
        """Why ``variant`` cannot run here, or None."""
        if variant.standard:
            missing = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m) is None]
            if missing:
                return f"uvicorn[standard] is not installed ({', '.join(missing)} missing)"
        if variant.app != MOUNT:
            return None
        check = subprocess.run(
            [sys.executable, "-m", "bench.mount_app", "--check"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **variant.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return None if check.returncode == 0 else (check.stdout + check.stderr).strip()

    # phases ------------------------------------------------------------------------------
    def command(self, target: Target, n: int, **extra: Any) -> dict[str, Any]:
        v = target.variant
        return {
            "host": "127.0.0.1",
            "port": target.port,
            "path": v.path,
            "body": v.body,
            "kind": v.kind,
            "n": n,
            "timeout": self.cfg.timeout,
            **extra,
        }

    def phase(self, target: Target, n: int, batches: int = 1) -> dict[str, Any]:
        watched = {"relay": target.child, "upstream": self.upstream, "loadgen": self.loadgen.child}
        before = {k: _cpu(c) for k, c in watched.items() if c is not None}
        reply = self.loadgen.request(
            self.command(target, n, cmd="run", batches=batches),
            timeout=batches * (self.cfg.timeout + 5) + 10,
        )
        cpu = {k: _cpu(watched[k]) - t for k, t in before.items()}  # type: ignore[arg-type]
        return {
            "n": n,
            "batches": batches,
            "streams": reply["streams"],
            "wall_s": reply["wall_s"],
            "cpu_s": cpu,
        }

    def setup(self) -> None:
        for v in (VARIANTS[name] for name in self.cfg.variants):
            if v.app is None:
                target: Target | None = Target(v, self.up_port, None)
            elif reason := self.unavailable(v):
                self.skip(v.name, reason)
                continue
            else:
                target, reason = self.start_relay(v, "/v1", "main")
                if target is None:
                    self.skip(v.name, f"relay did not start: {reason}")
                    continue
            probe = summarize_streams(self.phase(target, 2)["streams"])
            if probe["errors"] or probe["tokens"] == 0:
                why = probe["first_error"] or "no content tokens parsed from the stream"
                if "HTTP 404" in why:
                    why = f"{v.path} answered 404 (endpoint not there yet)"
                self.skip(v.name, why)
                if target.child is not None:
                    self.procs.stop(target.child)
                continue
            self.targets[v.name] = target
        self.say(f"variants: {', '.join(self.targets) or 'none'}")

    def skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason
        self.say(f"SKIP {name}: {reason}")

    def matrix(self) -> None:
        names = list(self.targets)
        for n in self.cfg.levels:
            batches = max(1, math.ceil(self.cfg.min_streams / n))
            for rnd in range(self.cfg.rounds):
                shift = rnd % len(names)
                for name in names[shift:] + names[:shift]:
                    target = self.targets[name]
                    result = self.phase(target, n, batches)
                    target.phases.setdefault(n, []).append(result)
                    self.say(_line(name, n, rnd, result))

    def ramp(self) -> dict[str, dict[str, Any]]:
        """Rising levels, every variant still passing at each level before the next level
        (interleaved like the matrix, so a noisy minute hits all variants, not one)."""
        levels: dict[str, list[dict[str, Any]]] = {name: [] for name in self.targets}
        alive = list(self.targets)
        for i, n in enumerate(self.cfg.ramp):
            shift = i % len(alive) if alive else 0
            for name in alive[shift:] + alive[:shift]:
                target = self.targets[name]
                phases = target.phases.get(n) or [self.phase(target, n)]
                level = _ramp_level(n, phases, reused=n in target.phases)
                if not level["ok"]:  # one hiccup on a shared machine must not decide: retry once
                    level = _ramp_level(n, [self.phase(target, n)], reused=False, retried=True)
                levels[name].append(level)
                self.say(
                    f"  ramp {name:13} N={n:<4} max gap {_f(level['gap_max'])} ms "
                    f"errors {level['errors']}{' (retry)' if level['retried'] else ''} "
                    f"-> {'ok' if level['ok'] else 'FAIL'}"
                )
            alive = [name for name in alive if levels[name][-1]["ok"]]
        out: dict[str, dict[str, Any]] = {}
        for name, done in levels.items():
            passed = [lv["n"] for lv in done if lv["ok"]]
            out[name] = {
                "levels": done,
                "max_sustained": passed[-1] if passed else 0,
                "capped": bool(done) and done[-1]["ok"],
            }
        return out

    def memory(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, main in self.targets.items():
            if main.child is None:
                continue
            target, reason = self.start_relay(main.variant, "/hold/v1", "memory")
            if target is None:
                out[name] = {"error": reason}
                continue
            try:
                out[name] = self.hold(target)
            finally:
                assert target.child is not None
                self.procs.stop(target.child)
            m = out[name]
            self.say(
                f"  memory {name:13} idle {m['idle_rss'] / 2**20:.1f} MiB, "
                f"{m['open']} open: +{_f(m['per_stream_kib'])} KiB/stream"
            )
        return out

    def hold(self, target: Target) -> dict[str, Any]:
        """RSS per open stream at each level of ``cfg.hold`` (ascending, one fresh process):
        (peak RSS with N streams open − idle RSS after a one-stream warm-up) / streams open.
        The headline figure is the largest level; the others draw how it grows."""
        assert target.child is not None
        proc = psutil.Process(target.child.pid)
        timeout = self.cfg.timeout + 10
        self.loadgen.send(self.command(target, 1, cmd="hold", hold_s=0.0))
        self.loadgen.read(timeout)
        self.loadgen.read(timeout)
        time.sleep(0.3)  # the warm-up loaded every lazy import and the client
        idle = proc.memory_info().rss
        levels = []
        for n in self.cfg.hold:
            self.loadgen.send(self.command(target, n, cmd="hold", hold_s=self.cfg.hold_s))
            ready = self.loadgen.read(timeout)
            peak = proc.memory_info().rss
            end = time.monotonic() + self.cfg.hold_s * 0.8
            while time.monotonic() < end:
                time.sleep(0.1)
                peak = max(peak, proc.memory_info().rss)
            final = self.loadgen.read(timeout)
            opened = ready["open"]
            levels.append(
                {
                    "n": n,
                    "open": opened,
                    "held_rss": peak,
                    "per_stream_kib": (peak - idle) / opened / 1024 if opened else None,
                    "still_open_after_hold": final["still_open_after_hold"],
                    "errors": final["errors"],
                }
            )
            time.sleep(0.5)  # the closed streams' tasks finish before the next level
        return {"idle_rss": idle, **levels[-1], "levels": levels}


def _ramp_level(
    n: int, phases: list[dict[str, Any]], reused: bool, retried: bool = False
) -> dict[str, Any]:
    s = summarize_streams(st for p in phases for st in p["streams"])
    relay = [p["cpu_s"]["relay"] for p in phases if "relay" in p["cpu_s"]]
    ok = (
        not s["errors"]
        and not s["short_streams"]
        and s["gap_max"] is not None
        and s["gap_max"] < GAP_LIMIT_MS
    )
    return {
        "n": n,
        "gap_max": s["gap_max"],
        "gap_p99": s["gap_p99"],
        "relay_us_per_token": sum(relay) / s["tokens"] * 1e6 if relay and s["tokens"] else None,
        "errors": s["errors"],
        "short_streams": s["short_streams"],
        "ok": ok,
        "reused": reused,
        "retried": retried,
    }


def _cpu(child: subprocess.Popen[bytes]) -> float:
    times = psutil.Process(child.pid).cpu_times()
    return float(times.user + times.system)


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _line(name: str, n: int, rnd: int, phase: dict[str, Any]) -> str:
    s = summarize_streams(phase["streams"])
    relay = phase["cpu_s"].get("relay")
    per_token = (
        f"{relay / s['tokens'] * 1e6:.0f} µs/tok" if relay is not None and s["tokens"] else ""
    )
    lg = phase["cpu_s"]["loadgen"] / phase["wall_s"] * 100
    return (
        f"  N={n:<4} r{rnd + 1} {name:13} ttft p50 {_f(s['ttft_p50'])} ms  gap p50 "
        f"{_f(s['gap_p50'])} p99 {_f(s['gap_p99'])} max {_f(s['gap_max'])} ms  "
        f"tokens {s['tokens']}/{s['streams'] * EXPECTED_TOKENS} err {s['errors']}  "
        f"{per_token}  loadgen {lg:.0f}% cpu"
    )


def run(cfg: Config, say: Callable[[str], None]) -> dict[str, Any]:
    started = time.monotonic()
    logdir = Path(__file__).resolve().parent / "results" / "logs"
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir(parents=True)
    with Procs(logdir) as procs:
        runner = Runner(cfg, procs, say)
        runner.setup()
        if runner.targets:
            runner.matrix()
            say("ramp (max sustained concurrency):")
            ramp = runner.ramp()
            say("memory per open stream:")
            memory = runner.memory()
        else:
            ramp, memory = {}, {}
        runner.loadgen.send({"cmd": "quit"})
        return {
            "targets": {name: t.phases for name, t in runner.targets.items()},
            "skipped": runner.skipped,
            "ramp": ramp,
            "memory": memory,
            "elapsed_s": time.monotonic() - started,
        }
