"""``LLMMount.from_env()``: provider choice, keys, and settings from ``LLM_SSE_*``."""

from __future__ import annotations

import pytest

from llm_sse_mount import ConfigError, LLMMount, OpenAICompatible, Scripted, Zhipu


def test_defaults_to_the_embedded_provider_with_no_key():
    mount = LLMMount.from_env({})
    assert isinstance(mount.provider, Scripted)
    assert mount.settings.requests.model == "scripted-1"


def test_openai_with_base_url_model_and_allow_list():
    mount = LLMMount.from_env(
        {
            "LLM_SSE_PROVIDER": "openai",
            "LLM_SSE_BASE_URL": "http://localhost:11434/v1",
            "LLM_SSE_API_KEY": "k",
            "LLM_SSE_MODEL": "llama3",
            "LLM_SSE_MODELS": "llama3, qwen2 ,",
        }
    )
    assert isinstance(mount.provider, OpenAICompatible)
    assert mount.provider.base_url == "http://localhost:11434/v1"
    assert mount.settings.requests.model == "llama3"
    assert mount.settings.requests.allowed_models() == ["llama3", "qwen2"]


def test_key_falls_back_to_the_vendor_variable():
    mount = LLMMount.from_env({"LLM_SSE_PROVIDER": "zhipu", "ZHIPUAI_API_KEY": "a.b"})
    assert isinstance(mount.provider, Zhipu)
    assert mount.provider.secrets()[0] == "a.b"
    mount = LLMMount.from_env({"LLM_SSE_PROVIDER": "openai", "OPENAI_API_KEY": "sk"})
    assert mount.provider.secrets() == ("sk",)


@pytest.mark.parametrize(
    ("provider", "names"), [("openai", "OPENAI_API_KEY"), ("zhipu", "ZHIPUAI_API_KEY")]
)
def test_a_real_provider_without_a_key_names_the_variable_to_set(provider, names):
    with pytest.raises(ConfigError, match="LLM_SSE_API_KEY") as info:
        LLMMount.from_env({"LLM_SSE_PROVIDER": provider})
    assert names in str(info.value)


def test_unknown_provider():
    with pytest.raises(ConfigError, match="LLM_SSE_PROVIDER"):
        LLMMount.from_env({"LLM_SSE_PROVIDER": "skynet"})


def test_durations_and_counts():
    mount = LLMMount.from_env(
        {
            "LLM_SSE_CONNECT_TIMEOUT": "2.5",
            "LLM_SSE_FIRST_TOKEN_TIMEOUT": "30",
            "LLM_SSE_IDLE_TIMEOUT": "none",
            "LLM_SSE_TOTAL_TIMEOUT": "600",
            "LLM_SSE_PING_INTERVAL": "5",
            "LLM_SSE_SEND_TIMEOUT": "9",
            "LLM_SSE_SHUTDOWN_GRACE": "1",
            "LLM_SSE_RETRIES": "4",
            "LLM_SSE_MAX_TOKENS": "256",
            "LLM_SSE_MAX_BODY_BYTES": "1000",
            "LLM_SSE_RESUME_GRACE": "3",
            "LLM_SSE_RETENTION": "60",
        }
    )
    s = mount.settings.options()
    timeouts = ("connect_timeout", "first_token_timeout", "idle_timeout", "total_timeout")
    assert [s[k] for k in timeouts] == [2.5, 30, None, 600]
    streams = ("ping_interval", "send_timeout", "shutdown_grace", "retries")
    assert [s[k] for k in streams] == [5, 9, 1, 4]
    caps = ("max_tokens", "max_body_bytes", "resume_grace", "retention")
    assert [s[k] for k in caps] == [256, 1000, 3, 60]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_SSE_RETRIES", "many"),
        ("LLM_SSE_IDLE_TIMEOUT", "-1"),
        ("LLM_SSE_PING_INTERVAL", "soon"),
    ],
)
def test_bad_values_say_which_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        LLMMount.from_env({name: value})


def test_keyword_arguments_override_the_environment():
    mount = LLMMount.from_env(
        {"LLM_SSE_RETRIES": "4"}, retries=1, provider=Scripted(default_model="x")
    )
    assert mount.settings.retry.retries == 1
    assert mount.settings.requests.model == "x"
