"""The ``/v1`` odds and ends, through both official SDKs over a real socket: the model list and
``models.retrieve`` in each vendor's shape, client tokens in ``X-Api-Key``, and a JSON error for
every ``/v1`` path the mount does not serve."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from llm_sse_mount.core.access import BearerTokens, Principal
from llm_sse_mount.request import ChatRequest, Message
from llm_sse_mount.usage_estimate import prompt_tokens

from .support.access_apps import CHAT, host_app, quick_mount
from .support.servers import ServerThread

Serve = Callable[..., ServerThread]
ANTHROPIC = {"anthropic-version": "2023-06-01"}


@pytest.fixture
def url(serve_app: Serve) -> str:
    mount = quick_mount(
        model="m1",
        models=["m1", "m2", "org/m3"],
        authorize=BearerTokens({"tok-all": "alice", "tok-m1": Principal("bob", models={"m1"})}),
    )
    return serve_app(host_app(mount)).url + "/llm"


def test_openai_sdk_lists_and_retrieves_models(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="tok-all", max_retries=0)
    assert [m.id for m in client.models.list()] == ["m1", "m2", "org/m3"]
    model = client.models.retrieve("org/m3")  # a slash in the id is part of the id
    assert (model.id, model.object, model.owned_by) == ("org/m3", "model", "scripted")
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-nope")
    assert info.value.code == "model_not_found"


def test_anthropic_sdk_lists_and_retrieves_models(url: str) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="tok-all", max_retries=0)
    page = client.models.list()
    assert [(m.id, m.type, m.display_name) for m in page] == [
        ("m1", "model", "m1"),
        ("m2", "model", "m2"),
        ("org/m3", "model", "org/m3"),
    ]
    assert (page.first_id, page.last_id, page.has_more) == ("m1", "org/m3", False)
    assert client.models.retrieve("m2").id == "m2"
    with pytest.raises(anthropic.NotFoundError) as info:
        client.models.retrieve("claude-nope")
    body: Any = info.value.body
    assert body["error"] == {
        "type": "not_found_error",
        "message": "model 'claude-nope' is not available here",
        "code": "model_not_found",
    }


def test_a_principal_sees_only_its_models(url: str) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="tok-m1", max_retries=0)
    assert [m.id for m in client.models.list()] == ["m1"]
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("m2")  # not forbidden: to bob it does not exist


def test_listing_models_needs_a_valid_token_in_either_header(url: str) -> None:
    assert httpx.get(url + "/v1/models").status_code == 401
    assert httpx.get(url + "/v1/models", headers={"x-api-key": "tok-all"}).status_code == 200
    auth = {"authorization": "Bearer tok-all"}
    assert httpx.get(url + "/v1/models", headers=auth).status_code == 200
    with pytest.raises(anthropic.AuthenticationError) as info:
        anthropic.Anthropic(base_url=url, api_key="bad", max_retries=0).models.list()
    assert info.value.response.headers["www-authenticate"].startswith("Bearer")


def test_x_api_key_works_on_the_native_routes_too(url: str) -> None:
    assert httpx.post(url + "/chat", json=CHAT).status_code == 401
    ok = httpx.post(url + "/chat", json=CHAT, headers={"x-api-key": "tok-all"})
    assert ok.status_code == 200
    assert "event: done" in ok.text
    # Authorization, when present, is the one that counts.
    both = {"authorization": "Bearer wrong", "x-api-key": "tok-all"}
    assert httpx.post(url + "/chat", json=CHAT, headers=both).status_code == 401


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_v1_paths_are_json_404s_in_openai_shape(url: str, method: str) -> None:
    r = httpx.request(method, url + "/v1/files/abc", headers={"authorization": "Bearer x"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert r.json()["error"]["type"] == "not_found_error"


def test_unknown_v1_paths_are_anthropic_shaped_for_anthropic_clients(url: str) -> None:
    r = httpx.post(url + "/v1/messages/batches", headers=ANTHROPIC, json={})
    assert r.status_code == 404
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "not_found_error"


def test_the_openai_sdk_reads_a_404_for_an_endpoint_we_lack(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="tok-all", max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="m1", input="hi")
    assert info.value.code == "not_found"


def test_a_known_path_with_the_wrong_method_is_a_json_405(url: str) -> None:
    r = httpx.get(url + "/v1/messages", headers=ANTHROPIC)
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"
    r = httpx.delete(url + "/v1/models")
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_admission_errors_are_in_each_protocol_shape_with_the_challenge(url: str) -> None:
    # Refused at admission (the token check runs when the stream is about to begin).
    chat = {"model": "m1", "messages": CHAT["messages"], "stream": True}
    r = httpx.post(url + "/v1/chat/completions", json=chat, headers={"authorization": "Bearer no"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    body = {**chat, "max_tokens": 5}
    r = httpx.post(url + "/v1/messages", json=body, headers={"x-api-key": "no", **ANTHROPIC})
    assert r.status_code == 401
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.headers["www-authenticate"].startswith("Bearer")
    # A model the principal may not use: 403 in the same shapes.
    r = httpx.post(
        url + "/v1/messages", json={**body, "model": "m2"}, headers={"x-api-key": "tok-m1"}
    )
    assert r.status_code == 403
    assert r.json()["error"] == {
        "type": "permission_error",
        "message": "model 'm2' is not available to you",
        "code": "model_forbidden",
    }


def test_count_tokens_answers_an_estimate_without_an_upstream_call(url: str) -> None:
    client = anthropic.Anthropic(base_url=url, api_key="tok-all", max_retries=0)
    count = client.messages.count_tokens(
        model="m1", system="Be brief.", messages=[{"role": "user", "content": "x" * 400}]
    )
    system, user = Message("system", "Be brief."), Message("user", "x" * 400)
    assert count.input_tokens == prompt_tokens(ChatRequest((system, user), "m1"))
    assert (count.model_extra or {})["estimated"] is True
    with pytest.raises(anthropic.PermissionDeniedError):
        client.with_options(api_key="tok-m1").messages.count_tokens(
            model="m2", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="m1", messages=[])
