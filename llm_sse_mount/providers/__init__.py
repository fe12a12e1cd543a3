"""Upstream providers. Each module speaks one vendor's API."""
