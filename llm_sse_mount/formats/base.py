"""The encoder seam: frames in, bytes for one client protocol out."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Protocol

from ..store.base import Frame

#: Compact JSON that keeps non-ASCII text as is (half the bytes of \\uXXXX escapes for CJK).
dumps: Callable[[object], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode


class Encoder(Protocol):
    """One response's encoder (may keep state across calls, e.g. "first delta carries role")."""

    #: Extra response headers this protocol needs.
    headers: Mapping[str, str]

    def encode(self, frames: list[Frame]) -> bytes:
        """Bytes for a batch of frames (``b""`` when none of them shows in this protocol)."""
        ...


EncoderFactory = Callable[[str, str], Encoder]
"""``(stream_id, model) -> Encoder``."""
