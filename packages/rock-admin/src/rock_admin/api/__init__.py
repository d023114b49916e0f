"""Litestar routes: the sandbox API (ROCK's envelope), the GEM API, `/metrics`."""

from rock_admin.api.app import create_app

__all__ = ["create_app"]
