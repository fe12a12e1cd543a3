"""Turn the runner's raw results into figures: markdown table, JSON, PNG."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from .stats import diff, ratio, summarize_streams
from .variants import VARIANTS

PACKAGES = (
    "uvicorn",
    "httpx",
    "starlette",
    "sse-starlette",
    "h11",
    "anyio",
    "uvloop",
    "llm_sse_mount",
)


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            # the bench measures the source tree it runs from, installed or not
            versions[name] = "source tree" if name == "llm_sse_mount" else "not installed"
    return {
        "cpu": model,
        "logical_cores": psutil.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
    }


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    """Per variant and concurrency: pooled percentiles, deltas to direct, CPU per token."""
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    for name, by_n in raw["targets"].items():
        rows[name] = {}
        for n, phases in by_n.items():
            s = summarize_streams(st for p in phases for st in p["streams"])
            relay_cpu = sum(p["cpu_s"].get("relay", 0.0) for p in phases)
            wall = sum(p["wall_s"] for p in phases)
            s["relay_cpu_s"] = relay_cpu if name != "direct" else None
            s["relay_us_per_token"] = (
                relay_cpu / s["tokens"] * 1e6 if name != "direct" and s["tokens"] else None
            )
            s["loadgen_cpu_pct_max"] = max(
                100 * p["cpu_s"]["loadgen"] / p["wall_s"] for p in phases
            )
            s["upstream_cpu_pct"] = 100 * sum(p["cpu_s"]["upstream"] for p in phases) / wall
            s["rounds"] = len(phases)
            rows[name][int(n)] = s
    for name, by_n in rows.items():
        v = VARIANTS.get(name)
        floor_phases = raw["targets"].get(v.floor if v else "", {})
        for n, s in by_n.items():
            # Round r of a variant ran next to round r of its floor: the ratio per round shows
            # how far machine noise moves the figure (the pooled ratio is the headline).
            per_round = [
                ratio(_per_token(a), _per_token(b))
                for a, b in zip(raw["targets"][name][n], floor_phases.get(n, ()), strict=False)
            ]
            known = sorted(r for r in per_round if r is not None)
            s["cpu_ratio_rounds"] = known
            s["cpu_ratio_spread"] = (known[0], known[-1]) if known and name != v.floor else None
            base = rows.get("direct", {}).get(n, {})
            for key in ("ttft_p50", "ttft_p99", "gap_p50", "gap_p99"):
                s[f"added_{key}"] = diff(s[key], base.get(key)) if name != "direct" else None
            v = VARIANTS.get(name)
            floor_row = rows.get(v.floor if v else "passthrough", {}).get(n, {})
            s["cpu_vs_passthrough"] = ratio(
                s["relay_us_per_token"], floor_row.get("relay_us_per_token")
            )
            # The target is judged against the floor relay, not against no relay at all.
            s["gap_p99_over_passthrough"] = (
                diff(s["gap_p99"], floor_row.get("gap_p99")) if v and v.app else None
            )
    return rows


def _per_token(phase: dict[str, Any]) -> float | None:
    relay = phase["cpu_s"].get("relay")
    tokens = sum(st["tokens"] for st in phase["streams"])
    return relay / tokens * 1e6 if relay is not None and tokens else None


def _f(value: float | None, digits: int = 1, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    cfg, m, rows = result["config"], result["machine"], result["figures"]
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    out = [
        "# llm_sse_mount relay benchmark",
        "",
        f"Machine: {m['cpu']}, {m['logical_cores']} logical cores "
        f"({m['physical_cores']} physical), "
        f"{m['memory_gib']} GiB, {m['os']}, Python {m['python']}.  ",
        f"Packages: {pk}.  ",
        f"Run: {'quick' if cfg['quick'] else 'full'}, concurrency {cfg['levels']}, {cfg['rounds']} "
        f"round(s) interleaved, uvicorn --loop {cfg['loop']} --http {cfg.get('http', 'h11')} (`+std` "
        f"variants: --loop uvloop --http httptools), 1 worker; upstream 64 "
        f"tokens 20 ms apart; {result['elapsed_s']:.0f} s.",
        "Mount upstream keep-alive: "
        + (
            f"BENCH_MOUNT_KEEPALIVE={os.environ['BENCH_MOUNT_KEEPALIVE']} idle connections."
            if "BENCH_MOUNT_KEEPALIVE" in os.environ
            else "the mount's default client (4 idle connections)."
        ),
        "",
    ]
    for name, reason in result["skipped"].items():
        out.append(f"- **{name} skipped**: {reason}")
    if result["skipped"]:
        out.append("")
    out += [
        "## Latency and relay CPU",
        "",
        "Times in ms. *+x* = the variant's own percentile minus direct's at the same concurrency. "
        "*× passthrough*: relay CPU per token against the passthrough on the same server (plain, "
        "or `+std` against `passthrough+std`), pooled over the rounds; *per round*: the lowest "
        "and highest ratio of one round (variant and floor ran side by side), i.e. the noise.",
        "",
        "| variant | N | streams | TTFT p50 | TTFT p99 | +TTFT p50 | +TTFT p99 | gap p50 | gap p99 "
        "| +gap p50 | +gap p99 | gap p99 − passthrough's | max gap | relay µs/token | × passthrough "
        "| × per round (min–max) | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for n in sorted({n for by_n in rows.values() for n in by_n}):
        for name, by_n in rows.items():
            s = by_n.get(n)
            if s is None:
                continue
            errors = s["errors"] + s["short_streams"]
            cells = [
                name,
                str(n),
                str(s["streams"]),
                _f(s["ttft_p50"]),
                _f(s["ttft_p99"]),
                *(_f(s[f"added_{k}"], signed=True) for k in ("ttft_p50", "ttft_p99")),
                _f(s["gap_p50"]),
                _f(s["gap_p99"]),
                *(_f(s[f"added_{k}"], signed=True) for k in ("gap_p50", "gap_p99")),
                _f(s.get("gap_p99_over_passthrough"), signed=True),
                _f(s["gap_max"]),
                _f(s["relay_us_per_token"], 0),
                _f(s["cpu_vs_passthrough"], 2),
                "–"
                if not s.get("cpu_ratio_spread")
                else f"{s['cpu_ratio_spread'][0]:.2f}–{s['cpu_ratio_spread'][1]:.2f}",
                str(errors),
            ]
            out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        "## Memory and capacity",
        "",
        "RSS per open stream at the largest level held; × = against passthrough-sse (the same "
        "parts the mount must use: httpx, sse-starlette); by level = KiB per stream at each level.",
        "",
        "| variant | idle RSS MiB | streams held open | RSS per open stream KiB | × passthrough-sse "
        "| by level | max sustained concurrency (max gap < 200 ms) |",
        "|---|--:|--:|--:|--:|---|--:|",
    ]
    sse_floor = result["memory"].get("passthrough-sse", {}).get("per_stream_kib")
    for name in rows:
        mem = result["memory"].get(name, {})
        ramp = result["ramp"].get(name, {})
        sustained = ramp.get("max_sustained")
        cap = f"≥ {sustained} (highest tried)" if ramp.get("capped") else str(sustained)
        idle = mem.get("idle_rss")
        by_level = ", ".join(
            f"{lv['n']}: {_f(lv['per_stream_kib'], 0)}" for lv in mem.get("levels", ())
        )
        out.append(
            f"| {name} | {_f(idle / 2**20) if idle else '–'} | "
            f"{mem.get('open', '–')}/{mem.get('n', '–')} | {_f(mem.get('per_stream_kib'))} | "
            f"{_f(ratio(mem.get('per_stream_kib'), sse_floor), 2)} | {by_level} | "
            f"{cap if ramp else '–'} |"
        )
    out += [
        "",
        "## Harness load (the other processes on the same cores)",
        "",
        "| N | load generator CPU, % of a core (worst phase) | upstream CPU, % of a core |",
        "|--:|--:|--:|",
    ]
    for n in sorted({n for by_n in rows.values() for n in by_n}):
        phases = [by_n[n] for by_n in rows.values() if n in by_n]
        lg = max(s["loadgen_cpu_pct_max"] for s in phases)
        up = max(s["upstream_cpu_pct"] for s in phases)
        flag = (
            " (saturated: figures at this N are bounded by the load generator)" if lg > 90 else ""
        )
        out.append(f"| {n} | {lg:.0f}{flag} | {up:.0f} |")
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["figures"]
    panels = (
        ("relay_us_per_token", "relay CPU µs per token"),
        ("added_gap_p99", "added p99 inter-token gap (ms)"),
        ("added_ttft_p99", "added p99 TTFT (ms)"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.5))
    for ax, (key, title) in zip(axes, panels, strict=False):
        for name, by_n in rows.items():
            points = sorted((n, s[key]) for n, s in by_n.items() if s.get(key) is not None)
            if points:
                ax.plot(*zip(*points, strict=False), marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"llm_sse_mount bench — {result['machine']['cpu']}, "
        f"{result['machine']['logical_cores']} cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scaling(result: dict[str, Any]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per relay variant: CPU µs/token by concurrency (matrix and ramp levels, pooled per N)
    and RSS KiB per open stream by streams held."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for name, by_n in result["figures"].items():
        if name == "direct":
            continue
        cpu = {int(n): s["relay_us_per_token"] for n, s in by_n.items()}
        for level in result["ramp"].get(name, {}).get("levels", ()):
            if level["n"] not in cpu and level.get("relay_us_per_token") is not None:
                cpu[level["n"]] = level["relay_us_per_token"]
        mem = [
            (lv["n"], lv["per_stream_kib"])
            for lv in result["memory"].get(name, {}).get("levels", ())
            if lv.get("per_stream_kib") is not None
        ]
        out[name] = {
            "cpu_us_per_token": sorted((n, c) for n, c in cpu.items() if c is not None),
            "rss_kib_per_stream": sorted(mem),
        }
    return out


def plot_scaling(result: dict[str, Any], path: Path) -> None:
    """How the cost grows with concurrency: both lines should stay flat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = scaling(result)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, title in (
        (axes[0], "cpu_us_per_token", "relay CPU µs per token"),
        (axes[1], "rss_kib_per_stream", "RSS KiB per open stream"),
    ):
        for name, series in data.items():
            if series[key]:
                ax.plot(*zip(*series[key], strict=False), marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("concurrent streams")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("llm_sse_mount: cost per token and per stream, 1 to 1,024 streams")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict[str, Any], outdir: Path, name: str = "latest") -> str:
    outdir.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    (outdir / f"{name}.md").write_text(text)
    slim = {k: v for k, v in result.items() if k != "raw"}
    (outdir / f"{name}.json").write_text(json.dumps(slim, indent=1, default=str) + "\n")
    plot(result, outdir / f"{name}.png")
    plot_scaling(result, outdir / ("scaling.png" if name == "latest" else f"{name}_scaling.png"))
    return text
