"""Access control: who may start a stream, which models they may use, what they may spend.

The host passes ``LLMMount(authorize=...)``: an async callable from the request to a
:class:`Principal` (or ``None`` for an anonymous caller) that raises
:class:`~llm_sse_mount.errors.Unauthorized` (401) or :class:`~llm_sse_mount.errors.Forbidden`
(403). A ``starlette.exceptions.HTTPException`` (FastAPI's ``HTTPException`` is one) is
accepted too, so a host's existing dependency functions can be reused as they are.

Ready hooks:

- :class:`BearerTokens`: ``Authorization: Bearer <token>``, or ``?access_token=`` for
  ``EventSource`` (which cannot set headers);
- :class:`AuthenticatedUser`: the ``request.user`` that Starlette's ``AuthenticationMiddleware``
  put in the scope (the mount shares its host's scope, so it sees what host middleware set:
  ``request.user``, ``request.state``, ``request.session``);
- :func:`from_dependency`: any ``(request) -> user`` function, sync or async, such as a FastAPI
  dependency that takes the ``Request``.

Where it happens: every new stream, in any client protocol, passes :meth:`Access.admit` in
``NewStream.__call__`` (after the request was parsed, before the upstream is opened):
authorize, the principal's model list (403), then the limits (429, :mod:`.limits`).
``GET /models`` and resuming a stream are authorized too (no limits: they spend nothing).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Receive, Scope

from ..errors import ConfigError, Forbidden, LLMSSEError, RateLimited, Unauthorized
from ..events import Usage
from ..request import ChatRequest
from ..settings import parse_int
from ..usage_estimate import prompt_tokens
from .limits import Limiter, LimitLease, Limits, LimitStore, Rate, RedisLimitStore

__all__ = [
    "Access",
    "Admission",
    "AuthenticatedUser",
    "Authorize",
    "BearerTokens",
    "Principal",
    "access_env_overrides",
    "from_dependency",
    "token_id",
]

logger = logging.getLogger("llm_sse_mount")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key their limits are counted under, and what they may use.

    - ``id``: stable and safe to log (never a raw token: see :func:`token_id`);
    - ``models``: the models this principal may use (``None``: every model the mount allows);
    - ``limits``: this principal's own :class:`~.limits.Limits` (``None``: the mount's);
    - ``anonymous``: no authorize hook, or it returned ``None`` (``id`` is the client address).
    """

    id: str
    models: frozenset[str] | None = None
    limits: Limits | None = None
    anonymous: bool = False
    #: Anything the host wants to carry along (not used by the mount).
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.models is not None and not isinstance(self.models, frozenset):
            object.__setattr__(self, "models", frozenset(self.models))

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


#: The ``authorize`` hook: the request (its body already read) to a principal, ``None`` for an
#: anonymous caller, or an exception (:class:`Unauthorized`, :class:`Forbidden`, HTTPException).
Authorize: TypeAlias = Callable[[Request], Awaitable["Principal | None"]]


def token_id(token: str) -> str:
    """A short, stable, log-safe id for a token: ``token:`` and 12 hex digits of its SHA-256."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


class _Challenge(Unauthorized):
    """A 401 that says how to authenticate (``error_response`` sends it as WWW-Authenticate)."""

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge


class BearerTokens:
    """An ``authorize`` hook that accepts a fixed set of bearer tokens.

    ``tokens`` maps each token to its principal (a :class:`Principal`, or a name), or is a plain
    list of tokens, each its own principal (id: :func:`token_id`)::

        LLMMount(authorize=BearerTokens({"s3cr3t-a": "alice",
                                         "s3cr3t-b": Principal("bob", models={"glm-4-flash"})}))

    The token is read from ``Authorization: Bearer <token>``, else from ``X-Api-Key: <token>``
    (how the ``anthropic`` SDK sends its key), else from the ``query_param``
    query parameter (default ``access_token``; ``None`` turns it off). Only the query parameter
    works with the browser's ``EventSource``, which cannot set headers; but a URL ends up in
    access logs, browser history and ``Referer`` headers, so give browsers short-lived or
    low-value tokens, or stream with ``fetch`` and a header instead.

    Tokens are compared by their SHA-256, so neither timing nor the lookup reveals a token.
    """

    def __init__(
        self,
        tokens: Mapping[str, str | Principal] | Iterable[str],
        *,
        query_param: str | None = "access_token",
        realm: str = "llm",
    ) -> None:
        pairs: Iterable[tuple[str, str | Principal | None]]
        if isinstance(tokens, Mapping):
            pairs = tokens.items()
        else:
            pairs = ((token, None) for token in tokens)
        self._table: dict[bytes, Principal] = {}
        for token, who in pairs:
            if not isinstance(token, str) or not token.strip():
                raise ConfigError("a bearer token must be a non-empty string")
            if who is None:
                principal = Principal(token_id(token))
            elif isinstance(who, Principal):
                principal = who
            else:
                principal = Principal(str(who))
            self._table[self._digest(token)] = principal
        if not self._table:
            raise ConfigError("BearerTokens needs at least one token")
        self.query_param = query_param
        self.realm = realm

    def __repr__(self) -> str:
        return f"BearerTokens({len(self._table)} tokens, query_param={self.query_param!r})"

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def token(self, request: Request) -> str | None:
        """The token the request presents, if any."""
        header = request.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
            return ""  # some other scheme: present, but not a token we can accept
        api_key = request.headers.get("x-api-key")
        if api_key is not None:
            # Anthropic's SDK (and tools built on it) sends its key only there.
            return api_key.strip()
        if self.query_param:
            return request.query_params.get(self.query_param)
        return None

    async def __call__(self, request: Request) -> Principal:
        token = self.token(request)
        if token is None:
            raise _Challenge("a bearer token is required", f'Bearer realm="{self.realm}"')
        principal = self._table.get(self._digest(token)) if token else None
        if principal is None:
            raise _Challenge(
                "the bearer token is not valid",
                f'Bearer realm="{self.realm}", error="invalid_token"',
            )
        return principal


class AuthenticatedUser:
    """An ``authorize`` hook for hosts that run Starlette's ``AuthenticationMiddleware``::

        app = Starlette(routes=[Mount("/llm", LLMMount(authorize=AuthenticatedUser("llm")))],
                        middleware=[Middleware(AuthenticationMiddleware, backend=MyBackend())])

    401 unless ``request.user.is_authenticated``; 403 unless the credentials carry ``scope``
    (when given). The principal's id is ``user.identity`` (or ``display_name``).
    """

    def __init__(self, scope: str | None = None) -> None:
        self.scope = scope

    def __repr__(self) -> str:
        return f"AuthenticatedUser(scope={self.scope!r})"

    async def __call__(self, request: Request) -> Principal:
        user = request.scope.get("user")
        if user is None:
            raise ConfigError("AuthenticatedUser needs AuthenticationMiddleware in the host app")
        if not getattr(user, "is_authenticated", False):
            raise Unauthorized("sign in to use this endpoint")
        if self.scope is not None:
            auth = request.scope.get("auth")
            if self.scope not in getattr(auth, "scopes", ()):
                raise Forbidden(f"this account lacks the {self.scope!r} permission")
        return Principal(_identity(user))


def _identity(user: Any) -> str:
    try:
        identity = user.identity
    except (AttributeError, NotImplementedError):  # Starlette's SimpleUser has no identity
        identity = None
    return str(identity or getattr(user, "display_name", "") or getattr(user, "id", "") or user)


def from_dependency(dependency: Callable[[Request], Any]) -> Authorize:
    """Reuse a host's ``(request) -> user`` check (sync or async, e.g. a FastAPI dependency
    that takes the ``Request`` and raises ``HTTPException``) as the ``authorize`` hook::

        async def current_user(request: Request) -> User:      # also used with Depends()
            ...raise HTTPException(401) / return user

        LLMMount(authorize=from_dependency(current_user))

    The result becomes the principal: a :class:`Principal` as is, a string as its id, another
    object by its ``identity``/``id``/``username``; ``None`` means an anonymous caller.
    """

    async def authorize(request: Request) -> Principal | None:
        result = dependency(request)
        if inspect.isawaitable(result):
            result = await result
        if result is None or isinstance(result, Principal):
            return result
        if isinstance(result, str):
            return Principal(result)
        for attr in ("identity", "id", "username"):
            value = getattr(result, attr, None)
            if value:
                return Principal(str(value))
        return Principal(str(result))

    return authorize


def _from_http_exception(exc: HTTPException) -> LLMSSEError:
    detail = exc.detail if isinstance(exc.detail, str) else "access denied"
    if exc.status_code == 401:
        return Unauthorized(detail)
    if exc.status_code == 403:
        return Forbidden(detail)
    if exc.status_code == 429:
        return RateLimited(detail)
    if 400 <= exc.status_code < 500:
        return Forbidden(detail, code="access_denied")
    return LLMSSEError("the access check failed", code="access_check_failed")


def estimate_tokens(chat: ChatRequest) -> int:
    """The prompt's size in tokens, estimated (messages, tool calls and tool definitions: see
    :mod:`~llm_sse_mount.usage_estimate`), charged up front against a token budget."""
    return prompt_tokens(chat)


def _client_address(scope: Scope) -> str:
    # Behind a proxy this is the proxy, unless the server trusts its forwarding headers
    # (uvicorn --proxy-headers --forwarded-allow-ips=...): that is the host's call, not ours.
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@dataclass(eq=False)
class Admission:
    """An admitted stream: who it is for, and the limits it holds."""

    principal: Principal
    lease: LimitLease | None = None
    #: The prompt's estimated tokens (charged at admission; the base of a usage estimate).
    prompt_tokens: int = 0

    async def run(self, body: Callable[[], Awaitable[None]]) -> None:
        """Serve the stream (``body``) holding the admission; release it as soon as it ends."""
        if self.lease is None:
            await body()
        else:
            await self.lease.hold(body)

    async def release(self) -> None:
        """Free the held limits now (idempotent; also done when ``run`` returns)."""
        if self.lease is not None:
            await self.lease.release()

    async def on_usage(self, usage: Usage) -> None:
        """The relay's usage hook: counts tokens against the principal's budget."""
        if self.lease is not None:
            await self.lease.record_usage(usage)


class Access:
    """A mount's access policy: the ``authorize`` hook and the limiter (either may be absent)."""

    def __init__(self, authorize: Authorize | None, limiter: Limiter | None) -> None:
        self.authorize = authorize
        self.limiter = limiter

    def __repr__(self) -> str:
        return f"Access(authorize={self.authorize!r}, limiter={self.limiter!r})"

    async def principal(self, request: Request) -> Principal:
        """Who is calling (raises 401/403 from the hook)."""
        anonymous = Principal("addr:" + _client_address(request.scope), anonymous=True)
        if self.authorize is None:
            return anonymous
        try:
            principal = await self.authorize(request)
        except LLMSSEError:
            raise
        except HTTPException as exc:
            raise _from_http_exception(exc) from None
        except Exception:
            # Fail closed: a broken hook must not let everybody in.
            logger.exception("the authorize hook failed")
            raise LLMSSEError("the access check failed", code="access_check_failed") from None
        if principal is None:
            return anonymous
        if not isinstance(principal, Principal):
            logger.error("the authorize hook returned %s, not a Principal", type(principal))
            raise LLMSSEError("the access check failed", code="access_check_failed")
        return principal

    async def admit(self, scope: Scope, receive: Receive, chat: ChatRequest) -> Admission:
        """Authorize the caller for ``chat`` and take its limits, before the upstream opens."""
        principal = await self.principal(Request(scope, receive))
        if not principal.may_use(chat.model):
            raise Forbidden(f"model {chat.model!r} is not available to you", code="model_forbidden")
        lease = None
        prompt = estimate_tokens(chat)
        if self.limiter is not None:
            lease = await self.limiter.admit(principal.id, principal.limits, prompt_tokens=prompt)
        return Admission(principal, lease, prompt)

    async def aclose(self) -> None:
        if self.limiter is not None:
            await self.limiter.aclose()


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw or raw.lower() in ("none", "off"):
        return None
    return parse_int(name, raw, minimum=1, hint=" (leave it unset for no limit)")


def limits_store_from_env(env: Mapping[str, str]) -> LimitStore | None:
    """``LLM_SSE_LIMITS_STORE`` (``memory`` or a Redis URL), else the Redis of
    ``LLM_SSE_STORE``, else ``None`` (memory)."""
    raw = env.get("LLM_SSE_LIMITS_STORE", "").strip()
    if raw.lower() == "memory":
        return None
    url = raw or env.get("LLM_SSE_STORE", "").strip()
    if not url or url.lower() == "memory":
        return None
    from ..store.redis_client import is_redis_url

    if not is_redis_url(url):
        raise ConfigError(
            "LLM_SSE_LIMITS_STORE must be 'memory' or a redis:// (or redis+cluster://) URL"
        )
    return RedisLimitStore(url)


def access_env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``LLMMount`` keyword arguments from the access variables that are set:
    ``LLM_SSE_CLIENT_TOKENS``, ``LLM_SSE_RATE_LIMIT``, ``LLM_SSE_MAX_CONCURRENT``,
    ``LLM_SSE_TOKENS_PER_MINUTE``, ``LLM_SSE_LIMITS_STORE`` (or ``LLM_SSE_STORE``)."""
    out: dict[str, Any] = {}
    tokens = [t.strip() for t in env.get("LLM_SSE_CLIENT_TOKENS", "").split(",") if t.strip()]
    if tokens:
        out["authorize"] = BearerTokens(tokens)
        # The ids, never the tokens: enough to tell which client a log line is about.
        logger.info("client tokens required: %s", ", ".join(token_id(t) for t in tokens))
    raw_rate = env.get("LLM_SSE_RATE_LIMIT", "").strip()
    rate = Rate.parse(raw_rate) if raw_rate and raw_rate.lower() not in ("none", "off") else None
    concurrent = _env_int(env, "LLM_SSE_MAX_CONCURRENT")
    tpm = _env_int(env, "LLM_SSE_TOKENS_PER_MINUTE")
    if rate or concurrent or tpm:
        out["limits"] = Limits(requests=rate, concurrent=concurrent, tokens_per_minute=tpm)
        store = limits_store_from_env(env)
        if store is not None:
            out["limits_store"] = store
    return out
