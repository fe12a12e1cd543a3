"""Launching Debian's Chromium for the browser tests, the same way everywhere.

Without the background-networking flags Chromium keeps trying to reach Google's hosts, which
this machine's closed network refuses."""

from __future__ import annotations

from typing import Any

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright: Any, executable_path: str) -> Any:
    """``playwright.chromium.launch`` with our executable and flags."""
    return playwright.chromium.launch(executable_path=executable_path, args=CHROMIUM_ARGS)
