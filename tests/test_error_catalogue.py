"""The one error catalogue and the code that raises its codes stay in step."""

from __future__ import annotations

import ast
import pathlib

import pytest

from llm_sse_mount import RequestError, UpstreamError
from llm_sse_mount.errors import CATALOGUE, ErrorKind, error_kind

PACKAGE = pathlib.Path(__file__).parent.parent / "llm_sse_mount"


def _codes_in_source() -> dict[str, str]:
    """Every error code the package writes: ``code="..."`` keywords, ``code = "..."`` class
    attributes and the first argument of ``Error(...)`` frames, with where each first is."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            value: ast.expr | None = None
            if (isinstance(node, ast.keyword) and node.arg == "code") or (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "code" for t in node.targets)
            ):
                value = node.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("Error", "invalid")
                and node.args
            ):
                value = node.args[0]
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.setdefault(value.value, f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_every_code_the_package_raises_is_in_the_catalogue() -> None:
    missing = {c: where for c, where in _codes_in_source().items() if c not in CATALOGUE}
    assert not missing


def test_every_catalogue_code_is_raised_somewhere() -> None:
    # config_error never reaches a client; the rest must have a raise site, or they drifted.
    strings = {
        node.value
        for path in PACKAGE.rglob("*.py")
        if path.name != "errors.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    used = (set(_codes_in_source()) | strings) & set(CATALOGUE) | {"config_error"}
    used |= {kind.family.code for kind in CATALOGUE.values()}  # raised with the class default
    assert sorted(set(CATALOGUE) - used) == []


def test_a_raise_site_cannot_give_a_code_outside_its_family() -> None:
    with pytest.raises(ValueError, match="upstream_timeout"):
        RequestError("nope", code="upstream_timeout")
    with pytest.raises(ValueError, match="no_such_code"):
        UpstreamError("nope", code="no_such_code")


def test_status_and_retryable_come_from_the_code_alone() -> None:
    error = UpstreamError("slow down", code="upstream_rate_limited", retry_after=2)
    assert (error.status, error.retryable, error.retry_after) == (429, True, 2)
    assert error_kind("some_vendor_code") is CATALOGUE["upstream_error"]


@pytest.mark.parametrize("kind", list(CATALOGUE.values()), ids=list(CATALOGUE))
def test_each_code_has_a_name_in_every_protocol(kind: ErrorKind) -> None:
    assert kind.openai_type.endswith("_error")
    assert kind.anthropic_type in {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "timeout_error",
        "api_error",
        "overloaded_error",
    }
    assert 400 <= kind.status <= 599 and kind.description
