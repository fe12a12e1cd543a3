"""Zhipu GLM (``open.bigmodel.cn``): OpenAI's stream shape with a few differences, handled by
the shared parser (finish reason sent twice, usage on the last chunk with choices, ``sensitive``
and ``network_error`` finish reasons, ``{"error": {"code": "1113", ...}}`` bodies), and its own
authentication: a JWT signed from the ``id.secret`` key, or the raw key (see ``zhipu_auth``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import httpx

from .openai import OpenAICompatible
from .zhipu_auth import ZhipuAuth

__all__ = ["Zhipu"]

ZHIPU_BASE_URL = "https://open.bigmodel.cn/api/paas/v4"


class Zhipu(OpenAICompatible):
    """Zhipu GLM chat completions.

    Example::

        Zhipu(api_key="<id>.<secret>")               # signs a JWT, renewed before it expires
        Zhipu(api_key="<id>.<secret>", auth="key")   # sends the key itself as the bearer token
    """

    name = "zhipu"

    def __init__(
        self,
        api_key: str,
        *,
        auth: Literal["jwt", "key"] = "jwt",
        base_url: str = ZHIPU_BASE_URL,
        default_model: str | None = "glm-4-flash",
        client: httpx.AsyncClient | None = None,
        headers: Mapping[str, str] | None = None,
        token_ttl: float = 3600.0,
        max_line_bytes: int = 1 << 20,
    ) -> None:
        self._auth = ZhipuAuth(api_key, mode=auth, ttl=token_ttl)
        # GLM reports usage on its last chunk by itself and does not know stream_options.
        super().__init__(
            base_url,
            None,
            default_model=default_model,
            client=client,
            headers=headers,
            stream_usage=False,
            # GLM sends its thinking as reasoning_content; a "<think>" in content is answer.
            think_tags=False,
            max_line_bytes=max_line_bytes,
        )

    def __repr__(self) -> str:
        return f"Zhipu(base_url={self.base_url!r}, auth={self._auth!r})"

    def secrets(self) -> tuple[str, ...]:
        return self._auth.secrets()

    def authorization(self) -> str:
        return self._auth.authorization()
