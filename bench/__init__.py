"""Relay benchmark for llm_sse_mount: `python -m bench` (see bench/README.md)."""
