"""Everything under the mount answers in the documented error shape: a JSON 404 for an
unknown path, a JSON 405 naming every allowed method, OpenAI's shape under ``/v1/``."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from llm_sse_mount import LLMMount


@pytest.fixture
def base(serve_app) -> str:
    app = Starlette(routes=[Mount("/llm", app=LLMMount())])
    return serve_app(app).url + "/llm"


def test_an_unknown_path_is_a_json_404(base: str) -> None:
    response = httpx.get(base + "/nothing")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "no route '/llm/nothing' here"}
    }


def test_a_wrong_method_is_a_json_405_that_names_every_allowed_method(base: str) -> None:
    response = httpx.put(base + "/chat", json={})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, HEAD, POST"


def test_unknown_v1_routes_answer_in_openai_shape(base: str) -> None:
    response = httpx.get(base + "/v1/nothing")
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["type"], error["param"]) == ("not_found", "not_found_error", None)
    wrong = httpx.delete(base + "/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"
    assert wrong.headers["allow"] == "POST"


def test_unknown_model_names_the_models_that_are_available(base: str) -> None:
    body = {"model": "glm-4-flash", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(base + "/chat", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_model" and "scripted-1" in error["message"]


def test_admission_errors_on_v1_come_in_openai_shape(serve_app) -> None:
    from llm_sse_mount import BearerTokens

    mount = LLMMount(authorize=BearerTokens(["s3cret"]))
    base = serve_app(Starlette(routes=[Mount("/llm", app=mount)])).url + "/llm"
    body = {"model": "scripted-1", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(base + "/v1/chat/completions", json=body)
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("unauthorized", "authentication_error")
    assert response.headers["www-authenticate"].startswith("Bearer")
