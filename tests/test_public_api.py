"""The public API is one flat, sorted, complete list."""

from __future__ import annotations

import llm_sse_mount

#: Exported, but imported on first use (they need the optional ``redis``, ``otel`` and
#: ``prometheus`` extras).
LAZY = {"OpenTelemetryObserver", "PrometheusObserver", "RedisStore"}


def test_all_is_sorted_and_complete():
    exported = llm_sse_mount.__all__
    assert exported == sorted(exported)
    public = {name for name in vars(llm_sse_mount) if not name.startswith("_")}
    submodules = {
        name for name in public if type(getattr(llm_sse_mount, name)).__name__ == "module"
    }
    # Every public name is exported, and every exported name is there (or lazily importable).
    assert public - submodules == set(exported) - submodules - LAZY
    for name in exported:
        assert getattr(llm_sse_mount, name) is not None


def test_unknown_attributes_still_raise():
    import pytest

    with pytest.raises(AttributeError):
        _ = llm_sse_mount.NoSuchThing  # type: ignore[attr-defined]
