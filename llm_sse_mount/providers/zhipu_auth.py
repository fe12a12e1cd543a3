"""The ``Authorization`` header for Zhipu's GLM API (``https://open.bigmodel.cn/api/paas/v4``).

A Zhipu API key has the shape ``<id>.<secret>``. The API takes either the raw key as a Bearer
token, or a short-lived JWT signed from it (what Zhipu's own SDK sends, so the key itself never
crosses the wire):

- header ``{"alg": "HS256", "sign_type": "SIGN", "typ": "JWT"}``, HMAC-SHA256 with ``<secret>``;
- payload ``{"api_key": <id>, "exp": <ms>, "timestamp": <ms>}``, both times in **milliseconds**
  since the epoch (not the seconds RFC 7519 uses; Zhipu's SDK multiplies ``time.time()`` by 1000).

Deliberate divergences from Zhipu's SDK (``zhipuai/core/_jwt_token.py``):

- the token is cached per key and re-signed ``renew_margin`` seconds before it expires, rather
  than cached for a fixed 3 minutes in a process-global ``ttl_cache``;
- a malformed key is a :class:`~llm_sse_mount.errors.ConfigError` at construction whose message
  never contains the key (the SDK wraps the ``ValueError`` of ``str.split``);
- pyjwt's "HMAC key shorter than 32 bytes" warning is not raised: Zhipu issues 16-character
  secrets, so the warning would fire on every signature and nobody could act on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Literal

import jwt
from jwt.algorithms import HMACAlgorithm

from ..errors import ConfigError

__all__ = ["ZhipuAuth"]

_HEADERS = {"alg": "HS256", "sign_type": "SIGN"}


class _ZhipuHS256(HMACAlgorithm):
    """HS256 without pyjwt's minimum-key-length warning (the key length is Zhipu's choice)."""

    def check_key_length(self, key: bytes) -> str | None:
        return None


def _signer() -> jwt.PyJWS:
    # A private PyJWS instance, so the relaxed HS256 never leaks into pyjwt's global registry
    # (no import-time side effects, no shared mutable state; see DESIGN.md).
    jws = jwt.PyJWS(algorithms=[])
    jws.register_algorithm("HS256", _ZhipuHS256(HMACAlgorithm.SHA256))
    return jws


class ZhipuAuth:
    """Produces ``Authorization`` header values for Zhipu, from an ``<id>.<secret>`` API key.

    ``mode="jwt"`` (default) signs a token valid for ``ttl`` seconds, caches it, and signs a new
    one once less than ``renew_margin`` seconds of its life are left, so a request never leaves
    with a token about to expire in flight. ``mode="key"`` sends the key itself.

    ``clock`` returns wall-clock seconds since the epoch (the server compares ``exp`` with its
    own clock, so a monotonic clock would be wrong); tests inject a fake one.

    Example::

        auth = ZhipuAuth(os.environ["ZHIPU_API_KEY"])
        headers = {"Authorization": auth.authorization()}   # "Bearer eyJhbGciOi..."

        ZhipuAuth("abc.def", mode="key").authorization()    # "Bearer abc.def"
    """

    __slots__ = (
        "_api_key",
        "_clock",
        "_expires_at",
        "_id",
        "_mode",
        "_previous",
        "_renew_margin",
        "_secret",
        "_signer",
        "_token",
        "_ttl",
        "_ttl_ms",
    )

    def __init__(
        self,
        api_key: str,
        *,
        mode: Literal["jwt", "key"] = "jwt",
        ttl: float = 3600.0,
        renew_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in ("jwt", "key"):
            raise ConfigError(f"Zhipu auth mode must be 'jwt' or 'key', not {mode!r}")
        # Messages below describe the key's shape only: a ConfigError ends up in logs and
        # tracebacks, and the key must never appear there.
        if not isinstance(api_key, str) or not api_key:
            raise ConfigError("the Zhipu API key is empty")
        if any(c.isspace() or not c.isprintable() for c in api_key):
            # Typically a trailing newline read from a file; it would also break the header.
            raise ConfigError("the Zhipu API key contains whitespace or control characters")
        key_id, dot, secret = api_key.partition(".")
        if mode == "jwt":
            # Zhipu's SDK does ``id, secret = apikey.split(".")``: exactly one dot. A key with
            # more dots is rejected there too, so we do not guess which dot is the separator.
            if not dot or "." in secret:
                raise ConfigError(
                    "the Zhipu API key must have the form '<id>.<secret>' (exactly one '.')"
                )
            if not key_id or not secret:
                raise ConfigError("the Zhipu API key has an empty <id> or <secret> part")
            if not ttl > 0:
                raise ConfigError("Zhipu token ttl must be positive")
            if not 0 <= renew_margin < ttl:
                # A margin >= ttl would make every call sign a new token.
                raise ConfigError("Zhipu token renew_margin must be >= 0 and less than ttl")
        self._api_key = api_key
        self._id = key_id
        self._secret = secret
        self._mode: Literal["jwt", "key"] = mode
        self._ttl = float(ttl)
        self._ttl_ms = round(ttl * 1000)
        self._renew_margin = float(renew_margin)
        self._clock = clock
        self._signer = _signer() if mode == "jwt" else None
        self._token: str | None = None
        # The token before the current one is still valid for up to renew_margin seconds.
        self._previous: str | None = None
        self._expires_at = 0.0

    @property
    def mode(self) -> Literal["jwt", "key"]:
        return self._mode

    def authorization(self) -> str:
        """The ``Authorization`` header value: ``"Bearer <jwt>"`` or ``"Bearer <key>"``."""
        if self._signer is None:
            return f"Bearer {self._api_key}"
        now = self._clock()
        if self._token is None or now >= self._expires_at - self._renew_margin:
            self._previous, self._token = self._token, self._sign(now)
            self._expires_at = now + self._ttl
        return f"Bearer {self._token}"

    def _sign(self, now: float) -> str:
        assert self._signer is not None
        timestamp = round(now * 1000)
        payload = {"api_key": self._id, "exp": timestamp + self._ttl_ms, "timestamp": timestamp}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return self._signer.encode(body, self._secret, algorithm="HS256", headers=_HEADERS)

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach a client or a log: the key, its signing secret, and
        the signed tokens still valid (a JWT is a bearer credential for its whole life, and an
        upstream or proxy may echo the ``Authorization`` header in an error body)."""
        out = [self._api_key]
        if self._secret:
            out.append(self._secret)
        out += [t for t in (self._token, self._previous) if t]
        return tuple(out)

    def __repr__(self) -> str:
        # Mode and timings only: the key, its id and its secret stay out of logs and tracebacks.
        margin = self._renew_margin
        return f"ZhipuAuth(mode={self._mode!r}, ttl={self._ttl!r}, renew_margin={margin!r})"
