"""The reference tables of the manual say what the code does.

- ``docs/configuration.md``: one row per ``LLMMount.__init__`` parameter, with its default, and
  every ``LLM_SSE_*`` variable the package reads, next to the argument it sets.
- ``docs/errors.md``: every error code the package can answer with, and no other, with the
  status its error class gives it.
- ``docs/performance.md``: every figure is in the results file the page names for it.
- ``README.md``: a front page (at most 200 lines) whose links resolve.

The code side is read from whatever the package exposes, so the tests survive a move of
modules: an error catalogue (a mapping of codes) when the package has one, else the codes
written at raise sites; the settings module's table of environment variables, plus every
``LLM_SSE_*`` name written in the source.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import llm_sse_mount
from llm_sse_mount import LLMMount, LLMSSEError

from .support.docs import DOCS, README, inline_codes, table_rows
from .support.servers import PROJECT_ROOT

PACKAGE = Path(llm_sse_mount.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
ENV_NAME = re.compile(r"LLM_SSE_[A-Z0-9_]*[A-Z0-9]")
CODE = re.compile(r"^[a-z]+(?:_[a-z0-9]+)+$")


def package_modules(*words: str) -> Iterator[ModuleType]:
    """The package's modules whose dotted name contains one of ``words``."""
    for info in pkgutil.walk_packages(llm_sse_mount.__path__, "llm_sse_mount."):
        if any(w in info.name.rsplit(".", 1)[-1] for w in words):
            yield importlib.import_module(info.name)


# --- configuration --------------------------------------------------------------------------


def env_vars_of_the_package() -> dict[str, str | None]:
    """Every ``LLM_SSE_*`` variable the package reads → the argument it sets, when a settings
    table says (``{"MODEL": ("model", parser)}`` today; a dataclass field with ``env`` in its
    metadata, or a ``{"LLM_SSE_MODEL": "model"}`` mapping, after a refactor)."""
    found: dict[str, str | None] = {}
    for path in SOURCES:
        for name in ENV_NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, None)
    for module in package_modules("settings", "config"):
        for attr, value in vars(module).items():
            if attr.startswith("__"):
                continue  # __annotations__, __builtins__
            if (
                isinstance(value, Mapping)
                and value
                and all(isinstance(k, str) and k.isupper() for k in value)
            ):
                for key, target in value.items():
                    name = key if key.startswith("LLM_SSE_") else f"LLM_SSE_{key}"
                    arg = target[0] if isinstance(target, tuple) else target
                    found[name] = arg if isinstance(arg, str) else found.get(name)
            elif isinstance(value, type) and is_dataclass(value):
                for field in fields(value):
                    if "env" in field.metadata:
                        found[field.metadata["env"]] = field.name
    return found


CONFIG_ROWS = table_rows(DOCS / "configuration.md", "argument")


def documented_settings() -> tuple[dict[str, str], dict[str, str | None]]:
    """(argument → default cell, environment variable → argument or None) of the table."""
    args: dict[str, str] = {}
    envs: dict[str, str | None] = {}
    for argument, environment, default, _meaning in CONFIG_ROWS:
        names = inline_codes(argument)
        arg = names[0] if names else None
        if arg is not None:
            assert arg not in args, f"{arg} has two rows"
            args[arg] = default
        for env in inline_codes(environment):
            assert ENV_NAME.fullmatch(env), f"{env!r} in the environment column"
            envs[env] = arg
    return args, envs


def test_configuration_table_has_every_argument_of_llmmount_and_no_other() -> None:
    params = set(inspect.signature(LLMMount.__init__).parameters) - {"self"}
    documented, _ = documented_settings()
    assert set(documented) == params


def test_configuration_table_has_every_environment_variable_the_package_reads() -> None:
    _, documented = documented_settings()
    read = env_vars_of_the_package()
    assert set(documented) == set(read)
    for name, arg in read.items():
        if arg is not None:
            assert documented[name] == arg, f"{name} sets {arg}, the table says {documented[name]}"


def test_configuration_table_defaults_are_the_signatures() -> None:
    documented, _ = documented_settings()
    checked = 0
    for name, param in inspect.signature(LLMMount.__init__).parameters.items():
        default = param.default
        if name not in documented or isinstance(default, bool):
            continue
        shown = inline_codes(documented[name])
        if isinstance(default, int | float):
            assert shown and float(shown[0]) == default, f"{name}: {documented[name]!r}"
            checked += 1
        elif default is None:
            assert not (shown and re.fullmatch(r"[\d.]+", shown[0])), f"{name} has no default"
    assert checked >= 10


# --- errors ---------------------------------------------------------------------------------


def documented_errors() -> dict[str, list[str]]:
    """code → its row's cells after the code (status, retryable, when)."""
    rows = table_rows(DOCS / "errors.md", "code")
    out: dict[str, list[str]] = {}
    for row in rows:
        (code,) = inline_codes(row[0])
        assert code not in out, f"{code} has two rows"
        out[code] = row[1:]
    return out


def error_catalogue() -> Mapping[str, Any] | None:
    """The package's catalogue of error codes, once it has one: a mapping of codes."""
    for module in package_modules("error", "catalog"):
        for attr, value in vars(module).items():
            if (
                not attr.startswith("_")
                and isinstance(value, Mapping)
                and len(value) >= 10
                and all(isinstance(k, str) and re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in value)
            ):
                return value
    return None


def entry_field(entry: Any, name: str) -> Any:
    """``entry.status`` or ``entry["status"]``: a catalogue entry may be either."""
    if isinstance(entry, Mapping):
        return entry.get(name)
    return getattr(entry, name, None)


def codes_at_raise_sites() -> set[str]:
    """Codes written where errors are made: ``code="x"`` arguments, ``code = "x"`` class
    attributes, a code as a plain argument of ``...Error(...)`` / ``_fail(...)``, and
    ``("x", retryable)`` rows of vendor error tables."""
    codes: set[str] = set()

    def literal(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                codes.update(
                    v for kw in node.keywords if kw.arg == "code" and (v := literal(kw.value))
                )
                func = node.func
                name = getattr(func, "id", None) or getattr(func, "attr", "")
                # The code is the first argument of an Error frame and of request.invalid();
                # later arguments are messages and field paths.
                if (name.endswith("Error") or name in ("_fail", "invalid")) and node.args:
                    first = literal(node.args[0])
                    if first and CODE.match(first):
                        codes.add(first)
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if (
                        isinstance(stmt, ast.Assign)
                        and [getattr(t, "id", None) for t in stmt.targets] == ["code"]
                        and (v := literal(stmt.value))
                    ):
                        codes.add(v)
            elif isinstance(node, ast.Tuple) and len(node.elts) == 2:
                first, second = node.elts
                if (
                    (v := literal(first))
                    and CODE.match(v)
                    and isinstance(second, ast.Constant)
                    and isinstance(second.value, bool)
                ):
                    codes.add(v)
    return codes


def string_constants() -> set[str]:
    return {
        node.value
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_error_table_names_every_code_the_package_answers_with() -> None:
    documented = documented_errors()
    catalogue = error_catalogue()
    if catalogue is not None:
        assert set(documented) == set(catalogue)
        assert codes_at_raise_sites() <= set(catalogue)
        for code, entry in catalogue.items():
            status, retryable = entry_field(entry, "status"), entry_field(entry, "retryable")
            shown_status, shown_retryable = documented[code][0], documented[code][1]
            if isinstance(status, int):
                assert shown_status == str(status), f"{code}: the catalogue says {status}"
            if isinstance(retryable, bool):
                shown = {"yes": True, "no": False}.get(shown_retryable)
                assert shown is retryable, f"{code}: the catalogue says retryable={retryable}"
        return
    missing = codes_at_raise_sites() - set(documented)
    assert not missing, f"raised but not in docs/errors.md: {sorted(missing)}"
    stale = set(documented) - string_constants()
    assert not stale, f"in docs/errors.md but nowhere in the package: {sorted(stale)}"


def error_classes() -> Iterator[type[LLMSSEError]]:
    todo: list[type[LLMSSEError]] = [LLMSSEError]
    while todo:
        cls = todo.pop()
        yield cls
        todo.extend(cls.__subclasses__())


def class_status(cls: type[LLMSSEError]) -> int | None:
    """The status an error class gives its default code: a class attribute today; once the
    catalogue decides statuses, the catalogue's entry for the code."""
    status = getattr(cls, "status", None)
    if isinstance(status, int):
        return status
    entry = (error_catalogue() or {}).get(cls.code)
    status = getattr(entry, "status", None)
    return status if isinstance(status, int) else None


def test_error_table_statuses_are_the_error_classes() -> None:
    documented = documented_errors()
    checked = 0
    for cls in error_classes():
        row = documented.get(cls.code)
        assert row is not None, f"{cls.__name__}.code {cls.code!r} is not documented"
        shown, status = row[0], class_status(cls)
        if shown.isdigit() and status is not None:
            assert int(shown) == status, f"{cls.code}: {cls.__name__} says {status}"
            checked += 1
    assert checked >= 5


# --- performance ----------------------------------------------------------------------------


def _cells(text: str) -> set[str]:
    return {
        cell.strip().lstrip("+")
        for line in text.splitlines()
        if line.startswith("|")
        for cell in line.strip().strip("|").split("|")
    }


def performance_tables() -> Iterator[tuple[str, list[str]]]:
    """(results file named before the table, the table's body cells) for each table."""
    source = None
    lines = (DOCS / "performance.md").read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        named = re.findall(r"bench/results/[\w.]+\.md", lines[i])
        if named:
            source = named[-1]
        if lines[i].startswith("|"):
            table = []
            while i < len(lines) and lines[i].startswith("|"):
                table.append(lines[i])
                i += 1
            assert source, "a performance table without a results file named before it"
            body = [c.strip() for row in table[2:] for c in row.strip().strip("|").split("|")]
            yield source, body
            continue
        i += 1


def test_performance_figures_are_in_the_results_files_they_cite() -> None:
    tables = list(performance_tables())
    assert tables
    for source, cells in tables:
        results = _cells((PROJECT_ROOT / source).read_text(encoding="utf-8"))
        absent = [c for c in cells if c not in results]
        assert not absent, f"not in {source}: {absent}"


# --- the front page -------------------------------------------------------------------------


def test_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_point_at_files_that_exist(page: Path) -> None:
    # mkdocs --strict checks links between pages; this also covers the README and links out
    # of docs/ (to CHANGELOG.md, bench/README.md), which mkdocs does not see.
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"


# --- architecture ---------------------------------------------------------------------------


def test_architecture_page_draws_the_layers_lint_enforces() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    contract = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [
        c["layers"] for c in contract["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    drawn = [line.split("  ")[0].strip() for line in page.splitlines()]
    positions = [drawn.index(layer) if layer in drawn else -1 for layer in layers]
    assert -1 not in positions, f"layers not drawn as in pyproject.toml: {layers}"
    assert positions == sorted(positions), "the page draws the layers in another order"
