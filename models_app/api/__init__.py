"""models_app's part of the JSON API: one router per topic (mistudio_site/api.py mounts them)."""
