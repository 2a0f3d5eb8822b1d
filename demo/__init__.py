"""The embedded-default site: fastmon on SQLite with no external services."""

from demo.celery import app as celery_app

__all__ = ["celery_app"]
