"""fastmon in a site's Celery app (swf-monitor's, with Redis as broker):

    # <site>/celery.py
    app = fastmon.celery.create_app("<site>")   # or configure(app) on an app of the site's

then ``celery -A <site> worker`` on as many machines as needed, and ``celery -A <site> beat``
once for the periodic checks.
"""

from __future__ import annotations

from celery import Celery

BEAT_SCHEDULE = {
    "fastmon-periodic-checks": {"task": "fastmon.periodic_checks", "schedule": 60.0},
}


def configure(app: Celery) -> None:
    """What fastmon's tasks need of the app: one task at a time per worker process (a task held
    by a busy worker waits for nothing), a visibility timeout after which Redis hands the task
    of a vanished worker to another one, and the periodic checks in the beat schedule."""

    def apply(sender: Celery, **kwargs: object) -> None:
        conf = sender.conf
        conf.worker_prefetch_multiplier = 1
        conf.broker_transport_options = {
            "visibility_timeout": 3600,
            **(conf.broker_transport_options or {}),
        }
        conf.beat_schedule = {**BEAT_SCHEDULE, **(conf.beat_schedule or {})}

    # Applied once the site's own configuration is read, which may need Django's settings.
    app.on_after_configure.connect(apply, weak=False)


def create_app(main: str) -> Celery:
    """A Celery app configured from the site's ``CELERY_*`` Django settings, finding every
    installed app's tasks, with fastmon's needs applied."""
    app = Celery(main)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.autodiscover_tasks()
    configure(app)
    return app
