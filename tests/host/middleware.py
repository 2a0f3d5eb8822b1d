"""swf-monitor's SSO as its TunnelAuthMiddleware takes it: the user named in ``X-Remote-User``
on a request from localhost (the proxy), per request, with no session."""

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse


class ProxyRemoteUser:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = request.META.get("HTTP_X_REMOTE_USER", "").strip()
        local = request.META.get("REMOTE_ADDR") in ("127.0.0.1", "::1")
        if name and local and not request.user.is_authenticated:
            request.user, _ = get_user_model().objects.get_or_create(username=name)
        return self.get_response(request)
