"""The variants the bench can run: what process serves them and how their tokens are counted.

Every relay variant also has a ``+std`` twin run under ``uvicorn[standard]`` (``--loop uvloop
--http httptools``), skipped when those are not installed, so plain and standard servers can be
measured side by side in one interleaved run (each against its own passthrough).

Flags that change the mount without changing its route are environment variables read by
``bench.mount_app`` (``BENCH_STORE=redis``, ``BENCH_MOUNT_TELEMETRY=on``): a variant is the route plus
those variables, so one more configuration is one more row here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

MESSAGES = [{"role": "user", "content": "hi"}]
OPENAI_BODY = {"model": "bench-model", "messages": MESSAGES, "stream": True}
RESPONSES_BODY = {"model": "bench-model", "input": "hi", "stream": True}
MOUNT = "bench.mount_app:create_app"
STD = "+std"


@dataclass(frozen=True)
class Variant:
    name: str
    app: str | None  # uvicorn factory; None: the load generator calls the upstream itself
    path: str
    kind: str  # how the load generator counts tokens: "openai", "native" or "responses"
    body: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)  # extra environment of the relay
    standard: bool = False  # run under uvloop + httptools
    default: bool = True  # part of a plain ``make bench``

    @property
    def floor(self) -> str:
        """The passthrough this variant's CPU is compared with (same server flavour)."""
        return "passthrough" + (STD if self.standard else "")


_BASE = (
    Variant("direct", None, "/v1/chat/completions", "openai", OPENAI_BODY),
    Variant(
        "passthrough", "bench.passthrough:create_app", "/v1/chat/completions", "openai", OPENAI_BODY
    ),
    Variant(
        "passthrough-sse",
        "bench.passthrough:create_sse_app",
        "/v1/chat/completions",
        "openai",
        OPENAI_BODY,
    ),
    Variant("mount-native", MOUNT, "/chat", "native", {"messages": MESSAGES}),
    Variant("mount-openai", MOUNT, "/v1/chat/completions", "openai", OPENAI_BODY),
    # Skipped (404 at the probe) until the Responses protocol is on the branch under test.
    Variant("mount-responses", MOUNT, "/v1/responses", "responses", RESPONSES_BODY),
    Variant(
        "mount-redis",
        MOUNT,
        "/chat",
        "native",
        {"messages": MESSAGES},
        env={"BENCH_STORE": "redis"},
    ),
    # The mount with httpx's default of 20 idle upstream connections (its own default is 4).
    Variant(
        "mount-native-ka20",
        MOUNT,
        "/chat",
        "native",
        {"messages": MESSAGES},
        env={"BENCH_MOUNT_KEEPALIVE": "20"},
        default=False,
    ),
    # OpenTelemetry, Prometheus and the JSON log line on.
    Variant(
        "mount-telemetry",
        MOUNT,
        "/chat",
        "native",
        {"messages": MESSAGES},
        env={"BENCH_MOUNT_TELEMETRY": "on"},
        default=False,
    ),
)

VARIANTS: dict[str, Variant] = {v.name: v for v in _BASE}
for _v in _BASE:
    if _v.app is not None:
        VARIANTS[_v.name + STD] = replace(_v, name=_v.name + STD, standard=True, default=False)

DEFAULT = tuple(name for name, v in VARIANTS.items() if v.default)
