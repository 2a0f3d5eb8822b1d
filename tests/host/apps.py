from django.apps import AppConfig


class HostConfig(AppConfig):
    name = "tests.host"
    label = "monitor_app"  # swf-monitor's app label
    default_auto_field = "django.db.models.BigAutoField"
