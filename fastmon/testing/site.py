"""The Django site skeleton fastmon runs in: what a minimal host site (the test site, the demo)
needs besides its databases. A site of one's own can start from these."""

from typing import Any

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "fastmon",
]
# As in swf-monitor: OpenAPI schemas by drf-spectacular.
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
# Swagger UI from the installed sidecar package, not from a CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "fastmon API",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def asgi_application() -> Any:
    """A host site's ASGI application: pages, API and static files over HTTP (served by the
    application itself, as runserver does), and fastmon's websocket inside the auth middleware.
    Call it once DJANGO_SETTINGS_MODULE is set."""
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.asgi import get_asgi_application

    http = ASGIStaticFilesHandler(get_asgi_application())  # sets Django up first

    import fastmon.routing

    return ProtocolTypeRouter({
        "http": http,
        "websocket": AuthMiddlewareStack(URLRouter(fastmon.routing.websocket_urlpatterns)),
    })  # fmt: skip
