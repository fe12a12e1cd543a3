"""llm_sse_mount: a streaming LLM chat endpoint for any ASGI app."""

__all__: list[str] = []
