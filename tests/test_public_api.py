"""The public API is one flat, sorted, complete list."""

from __future__ import annotations

import llm_sse_mount


def test_all_is_sorted_and_complete():
    exported = llm_sse_mount.__all__
    assert exported == sorted(exported)
    public = {name for name in vars(llm_sse_mount) if not name.startswith("_")}
    submodules = {
        name for name in public if type(getattr(llm_sse_mount, name)).__name__ == "module"
    }
    assert public - submodules == set(exported) - submodules
    for name in exported:
        assert hasattr(llm_sse_mount, name)
