"""``?access_token=`` never reaches the access log: the shipped filter, in a real uvicorn."""

from __future__ import annotations

import logging
import time

import httpx

from llm_sse_mount import AccessTokenFilter, mask_access_tokens

from .support.servers import serve_subprocess

TOKEN = "tok-Secret-4f1c9a77e2"


def test_the_example_apps_access_log_masks_the_token() -> None:
    env = {"LLM_SSE_CLIENT_TOKENS": TOKEN, "PYTHONUNBUFFERED": "1"}
    for app in ("example_app.app:create_app", "example_app.fastapi_app:create_app"):
        with serve_subprocess(
            app,
            env=env,
            factory=True,
            ready_path="/llm/health",
            extra_args=["--log-level", "info", "--access-log"],
        ) as proc:
            url = proc.url + "/llm/chat"
            params = {"prompt": "hi", "max_tokens": "2", "access_token": TOKEN, "format": "text"}
            with httpx.stream("GET", url, params=params, timeout=20) as response:
                assert response.status_code == 200
                response.read()
            refused = httpx.get(url, params={"prompt": "hi", "access_token": TOKEN + "x"})
            assert refused.status_code == 401
            deadline = time.monotonic() + 5
            while proc.output().count("GET /llm/chat?") < 2 and time.monotonic() < deadline:
                time.sleep(0.05)  # the child writes its log asynchronously: poll the file
            log = proc.output()
        lines = [line for line in log.splitlines() if "GET /llm/chat?" in line]
        assert len(lines) == 2, log
        assert all("access_token=***" in line for line in lines), lines
        assert TOKEN not in log, log
        assert " 200" in lines[0] and " 401" in lines[1]


def test_the_filter_masks_every_credential_parameter_and_keeps_the_rest() -> None:
    f = AccessTokenFilter(("access_token", "key"))
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/llm/chat?prompt=a&ACCESS_TOKEN=abc&key=k1#x", "1.1", 200),
        None,
    )
    assert f.filter(record) is True
    assert record.getMessage() == (
        '127.0.0.1:5 - "GET /llm/chat?prompt=a&ACCESS_TOKEN=***&key=***#x HTTP/1.1" 200'
    )
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "GET /a?access_token=zz", (), None)
    f.filter(plain)
    assert plain.getMessage() == "GET /a?access_token=***"
    untouched = logging.LogRecord("x", logging.INFO, __file__, 1, "/a?my_access_token=zz", (), None)
    f.filter(untouched)
    assert untouched.getMessage() == "/a?my_access_token=zz"


def test_mask_access_tokens_installs_once() -> None:
    logger = logging.getLogger("test_log_filters.once")
    first = mask_access_tokens(logger)
    assert mask_access_tokens("test_log_filters.once") is first
    assert logger.filters.count(first) == 1
    logger.removeFilter(first)
