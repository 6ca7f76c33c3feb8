from __future__ import annotations

from django.http import HttpRequest


def section(request: HttpRequest) -> dict[str, str]:
    """Which header tab is active."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return {"section": ""}
    if match.url_name == "save-from-extraction":  # without htmx: the extraction modal's own page
        return {"section": "models"}
    if match.namespace == "templates_app":
        return {"section": "templates"}
    if match.url_name.startswith("api-token"):
        return {"section": ""}
    if match.url_name.startswith(("extraction", "comparison")):
        return {"section": "extractions"}
    if match.url_name == "datasets":
        return {"section": "datasets"}
    return {"section": "models" if match.namespace == "models_app" else ""}
