import importlib.util

from django.apps import AppConfig


class FastmonConfig(AppConfig):
    name = "fastmon"
    verbose_name = "Fast monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fastmon import checks  # noqa: F401  (registers the system checks)

        # The sampling tasks register how ingest hands STFs to them, where Celery is installed.
        if importlib.util.find_spec("celery") is not None:
            from fastmon import tasks  # noqa: F401
