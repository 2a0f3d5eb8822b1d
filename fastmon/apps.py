from django.apps import AppConfig


class FastmonConfig(AppConfig):
    name = "fastmon"
    verbose_name = "Fast monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fastmon import checks  # noqa: F401  (registers the system checks)
