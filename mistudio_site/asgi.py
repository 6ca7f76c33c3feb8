"""ASGI entry point: Django for HTTP, and the live-page websocket (models_app.consumers) for
signed-in users on the studio's own pages (mistudio_site/origins.py: scheme, host and port).
Request bodies are judged by the server before this application sees them
(mistudio_site/server.py)."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mistudio_site.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry ready)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from mistudio_site.origins import SameOriginValidator  # noqa: E402
from models_app.consumers import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# What the process holds from here on for good (Django, the apps, the URL conf) goes to the
# permanent generation: a full garbage collection then scans only what requests created, and a
# page view that happens to trigger one is not held up by walking the whole framework.
gc.freeze()
