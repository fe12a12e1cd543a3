"""The manual builds with ``mkdocs build --strict``: a broken link or anchor, a page missing
from the nav or a nav entry without a page fails ``make test`` as well as ``make docs``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import unavailable
from .support.servers import PROJECT_ROOT


def test_the_manual_builds_strictly(tmp_path: Path) -> None:
    try:
        import material  # noqa: F401  (the theme mkdocs.yml names)
        import mkdocs  # noqa: F401
    except ImportError:
        unavailable('mkdocs and mkdocs-material are not installed: pip install -e ".[docs]"')
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index", "configuration", "errors", "browser", "resume"):
        built = tmp_path / ("index.html" if page == "index" else f"{page}/index.html")
        assert built.exists(), f"{page} was not built"
