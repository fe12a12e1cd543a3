"""Pytest fixtures over ``tests.support``, for ``tests/conftest.py`` to import::

    from .support.fixtures import fake_upstream, serve_app  # noqa: F401

``fake_upstream`` yields a started ``FakeUpstream`` and stops it after the test.
``serve_app(app, **uvicorn_config)`` starts a ``ServerThread`` for the test and stops it at
teardown, failing the test if it does not stop within 5 s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .fake_upstream import FakeUpstream
from .servers import ServerThread

__all__ = ["fake_upstream", "serve_app"]


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def serve_app() -> Iterator[Callable[..., ServerThread]]:
    servers: list[ServerThread] = []

    def start(app: Any, **config: Any) -> ServerThread:
        server = ServerThread(app, **config)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        if server.running:
            server.stop(5.0)
