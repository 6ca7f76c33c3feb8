"""ASGI entry point: Django for HTTP, and the live-page websocket (models_app.consumers) for
signed-in users from an allowed origin. Request bodies are judged by the server before this
application sees them (mistudio_site/server.py)."""
import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mistudio_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry ready)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from models_app.consumers import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})

# What the process holds from here on for good (Django, the apps, the URL conf) goes to the
# permanent generation: a full garbage collection then scans only what requests created, and a
# page view that happens to trigger one is not held up by walking the whole framework.
gc.freeze()
