"""The host-shaped site's ASGI application, as the README's "Adding fastmon" wires it."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.host_settings")

from fastmon.testing.site import asgi_application

application = asgi_application()
