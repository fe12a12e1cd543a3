"""``python -m example_app [--host H] [--port P]``: serve the example on 127.0.0.1:8000.

The address also comes from ``LLM_SSE_HOST``/``LLM_SSE_PORT`` or ``HOST``/``PORT`` (the command
line wins); the provider from ``LLM_SSE_*`` (see ``LLMMount.from_env``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from llm_sse_mount import ConfigError, LLMMount

from .app import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _env(env: Mapping[str, str], *names: str) -> str | None:
    return next((env[n] for n in names if env.get(n)), None)


def parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m example_app",
        description="Serve the llm_sse_mount example: a chat page at / and the mount at /llm.",
        epilog="Real model: LLM_SSE_PROVIDER=openai LLM_SSE_API_KEY=sk-... (docs/providers.md)",
    )
    parser.add_argument(
        "--host",
        default=_env(env, "LLM_SSE_HOST", "HOST") or DEFAULT_HOST,
        help=f"address to listen on (env LLM_SSE_HOST or HOST; default {DEFAULT_HOST})",
    )
    port = _env(env, "LLM_SSE_PORT", "PORT")
    try:
        default_port = int(port) if port else DEFAULT_PORT
    except ValueError:
        parser.error(f"the port must be a number, got {port!r}")
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help=f"port (env LLM_SSE_PORT or PORT; default {DEFAULT_PORT})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, os.environ)
    try:
        mount = LLMMount.from_env()
    except ConfigError as exc:
        print(f"example_app: {exc.message}", file=sys.stderr)
        return 2
    import uvicorn  # the "server" extra; imported late so --help works without it

    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    if ":" in shown:
        shown = f"[{shown}]"
    provider = mount.provider
    print(
        f"llm_sse_mount example\n"
        f"  open    http://{shown}:{args.port}/   in your browser\n"
        f"  mount   http://{shown}:{args.port}/llm   (POST /llm/chat, GET /llm/client.js)\n"
        f"  provider {provider.name}, model {mount.settings.requests.model}",
        flush=True,
    )
    if provider.name == "scripted":
        print(
            "  (the embedded demo provider: no key, no network; for a real model set\n"
            "   LLM_SSE_PROVIDER=openai LLM_SSE_API_KEY=...,"
            " optionally LLM_SSE_BASE_URL=... LLM_SSE_MODEL=...)",
            flush=True,
        )
    uvicorn.run(create_app(mount), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
