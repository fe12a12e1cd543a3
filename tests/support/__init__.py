"""Shared test support: a misbehaving fake upstream and real-socket servers for the mount."""
