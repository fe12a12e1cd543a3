"""Unit tests of the request model's images, structured output and reasoning parsers."""

from __future__ import annotations

import base64

import pytest

from llm_sse_mount.errors import RequestError
from llm_sse_mount.providers.capabilities import (
    Capabilities,
    capabilities_of,
    require_capabilities,
)
from llm_sse_mount.request import (
    ChatRequest,
    ImagePart,
    Message,
    Reasoning,
    ResponseFormat,
    TextPart,
    check_images,
    data_uri_bytes,
    parse_messages,
    parse_native_body,
    parse_response_format,
    parse_thinking,
)

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * 96).decode()


def code_of(exc: pytest.ExceptionInfo[RequestError]) -> str:
    return exc.value.code


def test_image_url_parts_keep_order_and_join_the_text() -> None:
    (msg,) = parse_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is "},
                    {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                    {"type": "text", "text": "this?"},
                ],
            }
        ]
    )
    assert msg.content == "what is this?"
    assert msg.parts == (
        TextPart("what is "),
        ImagePart(PNG, media_type="image/png", detail="low"),
        TextPart("this?"),
    )


def test_text_only_parts_stay_plain_text() -> None:
    (msg,) = parse_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert msg.content == "hi"
    assert msg.parts == ()


def test_https_image_has_no_media_type() -> None:
    (msg,) = parse_messages(
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x/a.jpg"}}],
            }
        ]
    )
    assert msg.images == (ImagePart("https://x/a.jpg"),)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://x/a.jpg", "invalid_image"),
        ("file:///etc/passwd", "invalid_image"),
        ("data:text/plain;base64,aGk=", "invalid_image"),
        ("data:image/png,rawbytes", "invalid_image"),
        ("data:image/png;base64,", "invalid_image"),
        ("", "invalid_request"),
    ],
)
def test_bad_image_urls_are_refused(url: str, code: str) -> None:
    with pytest.raises(RequestError) as exc:
        parse_messages(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
        )
    assert code_of(exc) == code


def test_images_only_from_users() -> None:
    with pytest.raises(RequestError) as exc:
        parse_messages(
            [{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}]
        )
    assert code_of(exc) == "unsupported_content"


def test_unknown_part_type_is_unsupported_content() -> None:
    with pytest.raises(RequestError) as exc:
        parse_messages([{"role": "user", "content": [{"type": "input_audio"}]}])
    assert code_of(exc) == "unsupported_content"


def test_data_uri_size_is_the_decoded_size() -> None:
    raw = b"x" * 1001
    image = ImagePart("data:image/png;base64," + base64.b64encode(raw).decode())
    assert data_uri_bytes(image) == 1001
    assert data_uri_bytes(ImagePart("https://x/y.png")) == 0


def _chat_with(images: int) -> ChatRequest:
    parts = tuple(ImagePart(PNG, media_type="image/png") for _ in range(images))
    return ChatRequest((Message("user", "", parts=parts),), model="m")


def test_image_bounds() -> None:
    check_images(_chat_with(2), max_images=2, max_image_bytes=100)
    with pytest.raises(RequestError) as exc:
        check_images(_chat_with(3), max_images=2, max_image_bytes=100)
    assert code_of(exc) == "too_many_images"
    with pytest.raises(RequestError) as exc:
        check_images(_chat_with(1), max_images=2, max_image_bytes=99)
    assert code_of(exc) == "image_too_large"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_object"}, ResponseFormat("json_object")),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "P", "schema": {"type": "object"}, "strict": True},
            },
            ResponseFormat("json_schema", schema={"type": "object"}, name="P", strict=True),
        ),
    ],
)
def test_response_format(raw: object, expected: ResponseFormat | None) -> None:
    assert parse_response_format(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "json",
        {"type": "xml"},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"schema": {}}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": []}},
        {"type": "json_schema", "json_schema": {"name": "x", "strict": "yes"}},
        {"type": "json_object", "extra": 1},
    ],
)
def test_bad_response_formats_are_400s(raw: object) -> None:
    with pytest.raises(RequestError) as exc:
        parse_response_format(raw)
    assert exc.value.status == 400


def test_native_body_takes_response_format_and_reasoning_effort() -> None:
    fields = parse_native_body(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"},
            "reasoning_effort": "low",
        }
    )
    assert fields["response_format"] == ResponseFormat("json_object")
    assert fields["reasoning"] == Reasoning(effort="low")


def test_thinking() -> None:
    assert parse_thinking({"type": "enabled", "budget_tokens": 2048}) == Reasoning(
        budget_tokens=2048
    )
    assert parse_thinking({"type": "disabled"}) is None
    for bad in ({"type": "enabled"}, {"type": "enabled", "budget_tokens": 10}, {"type": "on"}):
        with pytest.raises(RequestError):
            parse_thinking(bad)


class _Declares:
    name = "vendor"

    def capabilities(self, model: str) -> Capabilities:
        return Capabilities(image_urls=True, response_formats=frozenset({"json_object"}))


class _Silent:
    name = "homemade"


def test_a_provider_that_declares_nothing_takes_plain_chat_only() -> None:
    assert capabilities_of(_Silent(), "m") == Capabilities()
    require_capabilities(_Silent(), ChatRequest((Message("user", "hi"),), model="m"))
    with pytest.raises(RequestError) as exc:
        require_capabilities(_Silent(), _chat_with(1))
    assert code_of(exc) == "unsupported_content"
    assert "homemade" in exc.value.message


def test_capabilities_are_checked_per_form() -> None:
    url_chat = ChatRequest((Message("user", "", parts=(ImagePart("https://x/a.png"),)),), model="m")
    require_capabilities(_Declares(), url_chat)
    with pytest.raises(RequestError) as exc:
        require_capabilities(_Declares(), _chat_with(1))  # inline bytes: not declared
    assert code_of(exc) == "unsupported_content"
    schema = ChatRequest(
        (Message("user", "hi"),),
        model="m",
        response_format=ResponseFormat("json_schema", schema={}, name="x"),
    )
    with pytest.raises(RequestError) as exc:
        require_capabilities(_Declares(), schema)
    assert code_of(exc) == "unsupported_parameter"
    assert "vendor" in exc.value.message
