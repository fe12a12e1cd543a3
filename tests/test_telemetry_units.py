"""The observer seam, the Prometheus observer (read back with prometheus_client's own parser),
the stream-end log line and the options: one module each, the steps called as the core does."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llm_sse_mount import (
    ChatRequest,
    CompletionRecord,
    ConfigError,
    Message,
    RateLimited,
    TextDelta,
    Unauthorized,
    Usage,
)
from llm_sse_mount.core.observe import NOOP, StreamStart, combine
from llm_sse_mount.core.serving import log_id
from llm_sse_mount.events import StreamEvent
from llm_sse_mount.telemetry.config import build_telemetry, telemetry_env_overrides
from llm_sse_mount.telemetry.logs import LogObserver, trace_id_from_headers
from llm_sse_mount.telemetry.prometheus import PrometheusObserver

SECRET = "sk-secret-key-123"
PROMPT = "tell me about my secret project"


def start(model: str = "glm-4-flash", headers: dict[str, str] | None = None) -> StreamStart:
    chat = ChatRequest((Message("user", PROMPT),), model)
    return StreamStart(chat, "native", provider="zhipu", headers=headers or {})


def record(**overrides: Any) -> CompletionRecord:
    fields: dict[str, Any] = {
        "stream_id": "s1",
        "model": "glm-4-flash",
        "provider": "zhipu",
        "finish_reason": "stop",
        "usage": Usage(12, 30, 42),
        "time_to_first_token": 0.05,
        "duration": 0.2,
        "error_code": None,
        "client_disconnected": False,
        "frames": 6,
    }
    fields.update(overrides)
    return CompletionRecord(**fields)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed back by prometheus_client's parser."""
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# --- the seam ----------------------------------------------------------------------------------


class Recorder:
    """A host's own observer: records each step."""

    def __init__(self, fail: bool = False, chunks: bool = False) -> None:
        self.steps: list[str] = []
        self.fail = fail
        self.chunks = chunks
        self.seen_trace_id: str | None = None

    def start(self, info: StreamStart) -> Recorder.Obs:
        self.seen_trace_id = info.trace_id
        return Recorder.Obs(self)

    class Obs:
        def __init__(self, owner: Recorder) -> None:
            self.upstream_headers: dict[str, str] = {}
            self.trace_id: str | None = None
            self.owner = owner
            self.wants_chunks = owner.chunks

        def _step(self, name: str) -> None:
            self.owner.steps.append(name)
            if self.owner.fail:
                raise RuntimeError("observer bug")

        def refused(self, error: Exception) -> None:
            self._step("refused")

        def admitted(self, principal: str | None) -> None:
            self._step("admitted")

        def opened(
            self, provider: str, model: str, *, retries: int = 0, fallbacks: int = 0
        ) -> None:
            self._step("opened")

        def first_chunk(self) -> None:
            self._step("first_chunk")

        def chunk(self, event: StreamEvent) -> None:
            self._step("chunk")

        def ended(self, record: CompletionRecord) -> None:
            self._step("ended")


def drive(o: Any) -> None:
    o.admitted("alice")
    o.opened("zhipu", "glm-4-flash")
    o.first_chunk()
    if o.wants_chunks:
        o.chunk(TextDelta("x"))
    o.ended(record())


def test_no_observers_is_the_shared_noop() -> None:
    assert combine([]) is NOOP
    o = NOOP.start(start())
    assert o.wants_chunks is False and dict(o.upstream_headers) == {}
    drive(o)  # every step exists and does nothing


def test_a_failing_observer_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad, good = Recorder(fail=True), Recorder()
    o = combine([bad, good]).start(start())  # type: ignore[list-item]
    with caplog.at_level(logging.ERROR, "llm_sse_mount.telemetry"):
        drive(o)
    assert good.steps == ["admitted", "opened", "first_chunk", "ended"]
    assert bad.steps == good.steps
    assert sum("telemetry observer Recorder failed" in r.message for r in caplog.records) == 4


def test_only_observers_that_ask_get_chunks() -> None:
    plain, chunky = Recorder(), Recorder(chunks=True)
    o = combine([plain, chunky]).start(start())  # type: ignore[list-item]
    assert o.wants_chunks is True
    drive(o)
    assert "chunk" in chunky.steps and "chunk" not in plain.steps


def test_later_observers_learn_the_trace_id_of_earlier_ones() -> None:
    class Tracing(Recorder):
        def start(self, info: StreamStart) -> Recorder.Obs:
            obs = super().start(info)
            obs.trace_id = "ab" * 16
            obs.upstream_headers = {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}
            return obs

    first, second = Tracing(), Recorder()
    o = combine([first, second]).start(start())  # type: ignore[list-item]
    assert second.seen_trace_id == "ab" * 16
    assert o.upstream_headers["traceparent"].startswith("00-abab")


# --- Prometheus --------------------------------------------------------------------------------


def prom(**kwargs: Any) -> PrometheusObserver:
    return PrometheusObserver(models=["glm-4-flash"], providers=["zhipu"], **kwargs)


def test_a_good_stream_counts_once_with_bounded_labels() -> None:
    p = prom()
    o = p.start(start())
    o.admitted("alice")
    o.opened("zhipu", "glm-4-flash", retries=2, fallbacks=0)
    first = samples(p.registry)
    assert first[("llm_sse_streams_open", (("protocol", "native"),))] == 1
    o.first_chunk()
    o.ended(record())
    s = samples(p.registry)
    labels = (
        ("finish_reason", "stop"),
        ("model", "glm-4-flash"),
        ("protocol", "native"),
        ("provider", "zhipu"),
    )
    assert s[("llm_sse_streams_total", labels)] == 1
    assert s[("llm_sse_streams_open", (("protocol", "native"),))] == 0
    assert s[("llm_sse_upstream_retries_total", (("provider", "zhipu"),))] == 2
    tokens = {dict(k[1])["type"]: v for k, v in s.items() if k[0] == "llm_sse_tokens_total"}
    assert tokens == {"input": 12, "output": 30}
    ttft = (("model", "glm-4-flash"), ("protocol", "native"), ("provider", "zhipu"))
    assert s[("llm_sse_time_to_first_token_seconds_count", ttft)] == 1
    assert s[("llm_sse_stream_duration_seconds_count", ttft)] == 1


def test_label_values_outside_the_allow_lists_read_other() -> None:
    p = prom()
    o = p.start(start(model="gpt-some-new-thing"))
    o.opened("mystery", "gpt-some-new-thing")
    o.ended(
        record(
            model="gpt-some-new-thing",
            provider="mystery",
            error_code="Weird Code!",
            finish_reason="error",
        )
    )
    s = samples(p.registry)
    [streams] = [dict(k[1]) for k in s if k[0] == "llm_sse_streams_total"]
    assert streams["model"] == "other" and streams["provider"] == "other"
    [errors] = [dict(k[1]) for k in s if k[0] == "llm_sse_errors_total"]
    assert errors == {"protocol": "native", "stage": "stream", "code": "other"}


def test_errors_are_counted_by_code_and_stage() -> None:
    p = prom(codes={"unauthorized", "rate_limited", "upstream_error"})
    p.start(start()).refused(Unauthorized("who are you"))
    p.start(start()).refused(RateLimited("slow down"))
    unopened = p.start(start())
    unopened.admitted(None)
    unopened.ended(record(finish_reason="error", usage=None, error_code="upstream_error", frames=0))
    s = samples(p.registry)
    errors = {
        (dict(k[1])["stage"], dict(k[1])["code"]): v
        for k, v in s.items()
        if k[0] == "llm_sse_errors_total"
    }
    assert errors == {
        ("admission", "unauthorized"): 1,
        ("admission", "rate_limited"): 1,
        ("upstream", "upstream_error"): 1,
    }


def test_principals_appear_only_when_opted_in_and_only_hashed() -> None:
    plain = prom()
    o = plain.start(start())
    o.admitted("alice@example.com")
    o.ended(record())
    assert "alice" not in generate_latest(plain.registry).decode()
    assert "principal" not in generate_latest(plain.registry).decode()

    hashed = prom(principal_label=True, principal_salt=b"pepper")
    o = hashed.start(start())
    o.admitted("alice@example.com")
    o.ended(record())
    text = generate_latest(hashed.registry).decode()
    assert "alice" not in text
    assert f'principal="{hashed.principal_hash("alice@example.com")}"' in text
    assert len(hashed.principal_hash("alice@example.com")) == 16


def test_each_observer_has_its_own_registry_unless_given_one() -> None:
    a, b = prom(), prom()
    assert a.registry is not b.registry
    shared = CollectorRegistry()
    assert prom(registry=shared).registry is shared


# --- the log line ------------------------------------------------------------------------------


def test_the_json_line_carries_the_record_and_the_trace_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    obs = LogObserver("json")
    o = obs.start(start(headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}))
    with caplog.at_level(logging.INFO, "llm_sse_mount.streams"):
        o.ended(record())
    [line] = [r for r in caplog.records if r.name == "llm_sse_mount.streams"]
    fields = json.loads(line.getMessage())
    assert fields == {
        "event": "stream_end",
        "protocol": "native",
        "stream": log_id("s1"),
        "model": "glm-4-flash",
        "provider": "zhipu",
        "finish_reason": "stop",
        "usage_prompt_tokens": 12,
        "usage_completion_tokens": 30,
        "usage_total_tokens": 42,
        "usage_estimated": False,
        "time_to_first_token": 0.05,
        "duration": 0.2,
        "error_code": None,
        "client_disconnected": False,
        "frames": 6,
        "trace_id": trace,
    }
    assert line.llm_sse == fields  # type: ignore[attr-defined]
    assert PROMPT not in line.getMessage()


def test_the_text_line_is_key_value_pairs(caplog: pytest.LogCaptureFixture) -> None:
    o = LogObserver().start(start())
    with caplog.at_level(logging.INFO, "llm_sse_mount.streams"):
        o.refused(RateLimited("slow down"))
        o.ended(record(error_code="upstream_error", finish_reason="error", usage=None))
    refused, ended = [r.getMessage() for r in caplog.records if r.name == "llm_sse_mount.streams"]
    assert (
        refused
        == "event=stream_refused protocol=native error_code=rate_limited status=429 trace_id=-"
    )
    assert "finish_reason=error" in ended and "error_code=upstream_error" in ended
    assert "usage_prompt_tokens=- " in ended


def test_an_invalid_traceparent_gives_no_trace_id() -> None:
    assert trace_id_from_headers({"traceparent": "00-" + "0" * 32 + "-00f067aa0ba902b7-01"}) is None
    assert trace_id_from_headers({"traceparent": "garbage"}) is None
    assert trace_id_from_headers({}) is None


# --- options ----------------------------------------------------------------------------------


def test_the_environment_switches_metrics_and_the_log_format() -> None:
    env = {"LLM_SSE_METRICS": "prometheus", "LLM_SSE_LOG_FORMAT": "JSON", "LLM_SSE_OTEL": "off"}
    assert telemetry_env_overrides(env) == {"metrics": True, "log_format": "json", "otel": False}
    assert telemetry_env_overrides({"LLM_SSE_METRICS": "off"}) == {"metrics": False}
    with pytest.raises(ConfigError):
        telemetry_env_overrides({"LLM_SSE_METRICS": "statsd"})
    with pytest.raises(ConfigError):
        telemetry_env_overrides({"LLM_SSE_LOG_FORMAT": "xml"})


def test_build_telemetry_off_is_the_noop_and_on_has_a_registry() -> None:
    off = build_telemetry(otel=False)
    assert off.observer is NOOP and off.prometheus is None
    on = build_telemetry(otel=False, metrics=True, models=["m"], providers=["p"])
    assert on.prometheus is not None and on.prometheus.models == {"m"}
    shared = CollectorRegistry()
    assert build_telemetry(otel=False, metrics=shared).prometheus.registry is shared  # type: ignore[union-attr]


def test_no_secret_reaches_a_label_even_as_a_model_name() -> None:
    p = prom()
    o = p.start(start(model=SECRET))
    o.opened(SECRET, SECRET)
    o.ended(record(model=SECRET, provider=SECRET, error_code=SECRET))
    assert SECRET not in generate_latest(p.registry).decode()


def test_a_ready_prometheus_observer_gets_the_mount_s_bounds() -> None:
    mine = PrometheusObserver(principal_label=True, principal_salt=b"pepper")
    built = build_telemetry(otel=False, metrics=mine, models=["m"], providers=["p"], codes={"x"})
    assert built.prometheus is mine
    assert mine.models == {"m"} and mine.providers == {"p"} and mine.codes == {"x"}
    assert mine.code_label("y") == "other"


def test_the_package_loads_no_optional_telemetry_dependency_until_asked() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llm_sse_mount\n"
        "llm_sse_mount.LLMMount(otel=False)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'opentelemetry', 'prometheus_client'}))\n"
        "llm_sse_mount.LLMMount(metrics=True)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'opentelemetry', 'prometheus_client'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "['opentelemetry', 'prometheus_client']"]
