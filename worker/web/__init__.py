"""The web process: unsubscribe pages (nb, en) and provider webhooks."""

from __future__ import annotations

from worker.web.app import app_from_environment, create_app

__all__ = ["app_from_environment", "create_app"]
