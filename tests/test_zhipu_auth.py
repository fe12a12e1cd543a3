"""ZhipuAuth: the JWT Zhipu's GLM API expects, its cache and renewal, key mode, and key hygiene."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from typing import Any

import jwt
import pytest

from llm_sse_mount.errors import ConfigError
from llm_sse_mount.providers.zhipu_auth import ZhipuAuth

# Shaped like a real Zhipu key: a 32-hex id and a 16-character secret (shorter than the 32 bytes
# pyjwt recommends for HS256, which is exactly why the warning matters).
KEY_ID = "0123456789abcdef0123456789abcdef"
SECRET = "AbCdEfGh12345678"
API_KEY = f"{KEY_ID}.{SECRET}"
NOW = 1_700_000_000.25  # a fractional second, to catch a seconds/milliseconds mix-up


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def bearer(value: str) -> str:
    scheme, _, token = value.partition(" ")
    assert scheme == "Bearer"
    return token


def decode(token: str, secret: str = SECRET) -> dict[str, Any]:
    # exp is in milliseconds, which pyjwt would read as seconds far in the future; the tests
    # check it themselves. The short-key warning silenced here is about this decode, not the
    # code under test (test_signing_a_zhipu_sized_secret_emits_no_warning covers that).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"verify_exp": False}
        )
    return claims


def test_jwt_header_has_hs256_and_sign_type_sign() -> None:
    token = bearer(ZhipuAuth(API_KEY, clock=FakeClock()).authorization())
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["sign_type"] == "SIGN"


def test_jwt_claims_are_key_id_and_milliseconds() -> None:
    token = bearer(ZhipuAuth(API_KEY, ttl=600, clock=FakeClock()).authorization())
    claims = decode(token)
    assert set(claims) == {"api_key", "exp", "timestamp"}
    assert claims["api_key"] == KEY_ID
    assert claims["timestamp"] == round(NOW * 1000)
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - claims["timestamp"] == 600 * 1000


def test_jwt_signature_is_plain_hmac_sha256_of_the_secret() -> None:
    # Independent of pyjwt: what Zhipu's server computes.
    token = bearer(ZhipuAuth(API_KEY, clock=FakeClock()).authorization())
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected


def test_jwt_with_the_wrong_secret_does_not_verify() -> None:
    token = bearer(ZhipuAuth(API_KEY, clock=FakeClock()).authorization())
    with pytest.raises(jwt.InvalidSignatureError):
        decode(token, secret="not-the-secret-0")


def test_signing_a_zhipu_sized_secret_emits_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ZhipuAuth(API_KEY).authorization()


def test_signing_leaves_pyjwt_global_hs256_untouched() -> None:
    ZhipuAuth(API_KEY).authorization()
    with pytest.warns(UserWarning, match="HMAC key"):
        jwt.encode({"a": 1}, "short", algorithm="HS256")


def test_token_is_cached_while_fresh() -> None:
    clock = FakeClock()
    auth = ZhipuAuth(API_KEY, ttl=3600, renew_margin=60, clock=clock)
    first = auth.authorization()
    clock.now += 3600 - 60 - 1  # one second before the renewal point
    assert auth.authorization() == first


def test_token_is_renewed_when_less_than_margin_is_left() -> None:
    clock = FakeClock()
    auth = ZhipuAuth(API_KEY, ttl=3600, renew_margin=60, clock=clock)
    first = decode(bearer(auth.authorization()))
    clock.now += 3600 - 60
    renewed = auth.authorization()
    claims = decode(bearer(renewed))
    assert claims["timestamp"] == round(clock.now * 1000)
    assert claims["exp"] > first["exp"]
    assert auth.authorization() == renewed  # and the new one is cached in turn


def test_token_is_renewed_after_expiry_and_clock_jumps() -> None:
    clock = FakeClock()
    auth = ZhipuAuth(API_KEY, ttl=10, renew_margin=1, clock=clock)
    first = auth.authorization()
    clock.now += 86_400
    assert auth.authorization() != first


def test_fractional_ttl_is_exact_in_milliseconds() -> None:
    claims = decode(bearer(ZhipuAuth(API_KEY, ttl=1.5, renew_margin=0.5).authorization()))
    assert claims["exp"] - claims["timestamp"] == 1500


def test_key_mode_sends_the_key_as_is() -> None:
    auth = ZhipuAuth(API_KEY, mode="key")
    assert auth.authorization() == f"Bearer {API_KEY}"
    assert auth.mode == "key"


def test_key_mode_accepts_a_key_without_a_dot() -> None:
    assert ZhipuAuth("opaque-token", mode="key").authorization() == "Bearer opaque-token"


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "nodotatall",
        ".secretonly",
        "idonly.",
        "keyid.secretpart.extra",
        f"{API_KEY}\n",
        f" {API_KEY}",
    ],
)
def test_malformed_key_is_a_config_error_that_hides_the_key(bad_key: str) -> None:
    with pytest.raises(ConfigError) as info:
        ZhipuAuth(bad_key)
    message = str(info.value)
    assert "Zhipu API key" in message
    for part in {bad_key, *bad_key.strip().split(".")} - {""}:
        assert part not in message


def test_malformed_key_error_is_not_chained_to_one_that_shows_it() -> None:
    with pytest.raises(ConfigError) as info:
        ZhipuAuth("a.b.c")
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@pytest.mark.parametrize(("ttl", "margin"), [(0, 0), (-1, 0), (60, 60), (60, 120), (60, -1)])
def test_bad_timings_are_config_errors(ttl: float, margin: float) -> None:
    with pytest.raises(ConfigError):
        ZhipuAuth(API_KEY, ttl=ttl, renew_margin=margin)


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ZhipuAuth(API_KEY, mode="basic")  # type: ignore[arg-type]


def test_secrets_are_the_key_and_the_signing_secret() -> None:
    assert ZhipuAuth(API_KEY).secrets() == (API_KEY, SECRET)
    assert ZhipuAuth(API_KEY, mode="key").secrets() == (API_KEY, SECRET)
    assert ZhipuAuth("opaque-token", mode="key").secrets() == ("opaque-token",)


@pytest.mark.parametrize("mode", ["jwt", "key"])
def test_repr_and_str_hide_key_id_and_secret(mode: Any) -> None:
    auth = ZhipuAuth(API_KEY, mode=mode)
    auth.authorization()
    for text in (repr(auth), str(auth), f"{auth}", f"{auth!r}"):
        assert "ZhipuAuth" in text
        assert KEY_ID not in text
        assert SECRET not in text


def test_instance_has_no_dict_to_dump() -> None:
    # vars()/__dict__ dumps (debug toolbars, loggers) are a common way keys leak.
    assert not hasattr(ZhipuAuth(API_KEY), "__dict__")


def test_payload_is_compact_json() -> None:
    token = bearer(ZhipuAuth(API_KEY, clock=FakeClock()).authorization())
    payload_b64 = token.split(".")[1]
    raw = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
    assert json.loads(raw)["api_key"] == KEY_ID
    assert b" " not in raw
