"""The example host app: a page that streams a model's answer, and ``/llm`` mounted next to it.

Run it with ``make run`` or ``python -m example_app`` (see ``docs/browser.md``).
"""

from .app import create_app

__all__ = ["create_app"]
