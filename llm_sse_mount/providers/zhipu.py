"""Zhipu GLM (``open.bigmodel.cn``): OpenAI's stream shape with a few differences, handled by
the shared parser (finish reason sent twice, usage on the last chunk with choices, ``sensitive``
and ``network_error`` finish reasons, ``{"error": {"code": "1113", ...}}`` bodies), and its own
authentication: a JWT signed from the ``id.secret`` key, or the raw key (see ``zhipu_auth``).

Beyond text (from GLM's API reference): JSON mode is ``response_format: {"type":
"json_object"}``; GLM has no JSON-schema mode, so ``json_schema`` is refused (400) rather than
answered as free JSON. Images go only to the vision models (``glm-4v``, ``glm-4v-plus``,
``glm-4v-flash``, ``glm-4.1v-thinking-*``, ``glm-4.5v``, ...: a ``v`` right after the version),
as ``image_url`` parts whose ``url`` is the https URL or, for inline images, the bare base64
(GLM's documented form, without the ``data:`` prefix); ``detail`` is not sent. Any other model
refuses images with a 400 naming the model. ``reasoning_effort`` has no GLM equivalent and is
not sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from ..request import ChatRequest, ImagePart
from .capabilities import Capabilities
from .openai import OpenAICompatible
from .zhipu_auth import ZhipuAuth

__all__ = ["Zhipu"]

ZHIPU_BASE_URL = "https://open.bigmodel.cn/api/paas/v4"

#: GLM's vision models: ``glm-4v``, ``glm-4v-plus-0111``, ``glm-4.1v-thinking-flash``, ``glm-4.5v``.
_VISION_MODEL = re.compile(r"glm-\d+(\.\d+)?v(\b|-|$)", re.IGNORECASE)
_TEXT = Capabilities(response_formats=frozenset({"json_object"}))
_VISION = Capabilities(
    image_urls=True, image_data=True, response_formats=frozenset({"json_object"})
)


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

    def capabilities(self, model: str) -> Capabilities:
        return _VISION if _VISION_MODEL.match(model) else _TEXT

    def image_part(self, image: ImagePart) -> dict[str, Any]:
        url = image.url.partition(",")[2] if image.url.startswith("data:") else image.url
        return {"type": "image_url", "image_url": {"url": url}}

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        body = super().build_body(request)
        body.pop("reasoning_effort", None)
        return body
