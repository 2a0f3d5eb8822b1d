"""The embedded-default site: fastmon on SQLite with no external services."""

from demo.celery import app as celery_app

__all__ = ["PREFIX", "celery_app"]

# How every line the demo prints starts.
PREFIX = "fastmon demo:"
