"""Choosing a provider from the environment (``LLMMount.from_env``)."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigError
from ..settings import parse_switch
from .base import Provider

__all__ = ["PROVIDERS", "provider_from_env"]

#: ``LLM_SSE_PROVIDER`` values → the key variables tried after ``LLM_SSE_API_KEY``.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "scripted": (),
    "openai": ("OPENAI_API_KEY",),
    "zhipu": ("ZHIPUAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openai-responses": ("OPENAI_API_KEY",),
}


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "")
    return default if not raw.strip() else parse_switch(name, raw)


def _key(env: Mapping[str, str], kind: str) -> str:
    names = ("LLM_SSE_API_KEY", *PROVIDERS[kind])
    for name in names:
        if env.get(name):
            return env[name]
    raise ConfigError(f"LLM_SSE_PROVIDER={kind} needs an API key: set {' or '.join(names)}")


def provider_from_env(env: Mapping[str, str]) -> Provider:
    kind = env.get("LLM_SSE_PROVIDER", "scripted").strip().lower() or "scripted"
    if kind not in PROVIDERS:
        raise ConfigError(f"LLM_SSE_PROVIDER={kind!r} is not one of {', '.join(sorted(PROVIDERS))}")
    base_url = env.get("LLM_SSE_BASE_URL") or None
    model = env.get("LLM_SSE_MODEL") or None
    if kind == "scripted":
        from .scripted import Scripted

        return Scripted()
    if kind == "openai":
        from .openai import OpenAICompatible

        api_key = _key(env, kind)
        return OpenAICompatible(
            base_url or "https://api.openai.com/v1",
            api_key,
            default_model=model or "gpt-4o-mini",
            think_tags=_switch(env, "LLM_SSE_THINK_TAGS", True),
        )
    if kind == "gemini":
        from .gemini import GEMINI_BASE_URL, Gemini

        return Gemini(
            _key(env, kind),
            base_url=base_url or GEMINI_BASE_URL,
            default_model=model or "gemini-2.5-flash",
        )
    if kind == "openai-responses":
        from .openai_responses import OpenAIResponses

        return OpenAIResponses(
            _key(env, kind),
            base_url=base_url or "https://api.openai.com/v1",
            default_model=model or "gpt-5-mini",
        )
    if kind == "zhipu":
        from .zhipu import ZHIPU_BASE_URL, Zhipu

        auth = env.get("LLM_SSE_ZHIPU_AUTH", "jwt")
        if auth not in ("jwt", "key"):
            raise ConfigError("LLM_SSE_ZHIPU_AUTH must be 'jwt' or 'key'")
        return Zhipu(
            _key(env, kind),
            auth="jwt" if auth == "jwt" else "key",
            base_url=base_url or ZHIPU_BASE_URL,
            default_model=model or "glm-4-flash",
        )
    from .anthropic import Anthropic

    return Anthropic(_key(env, kind), base_url=base_url, default_model=model)
