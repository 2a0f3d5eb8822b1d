"""swf-monitor's SSO as its proxy passes it: the user name in ``X-Remote-User``."""

from django.contrib.auth.middleware import RemoteUserMiddleware


class ProxyRemoteUser(RemoteUserMiddleware):
    header = "HTTP_X_REMOTE_USER"
    force_logout_if_no_header = False  # the session outlives a request without the header
    # Django's async path prefixes the header with HTTP_ once more: run the sync one.
    async_capable = False
