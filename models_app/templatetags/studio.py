"""Number formatting for cards: parameters ("1.1B"), bytes, speeds and durations."""
from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def params(value: int | None) -> str:
    if not value:
        return "—"
    for divisor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= divisor:
            scaled = value / divisor
            text = f"{scaled:.1f}" if scaled < 10 else f"{scaled:.0f}"
            return text.removesuffix(".0") + suffix
    return str(value)


@register.filter
def bytesize(value: int | float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


@register.filter
def speed(value: float | None) -> str:
    return f"{bytesize(value)}/s" if value else "—"


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@register.filter
def label(fmt: str) -> str:
    from ..ml.quantization import LABELS

    return LABELS.get(fmt, fmt.upper() if fmt else "")


@register.filter
def get(mapping: dict, key: str):
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def duration_of(value) -> str:
    """A timedelta as `duration` writes seconds."""
    return duration(value.total_seconds()) if value is not None else "—"


@register.filter
def layer_ranges(layers) -> str:
    """[0, 2, 5, 6, 7] -> "0, 2, 5-7", as the template form takes layers back."""
    from templates_app.models import format_layers

    return format_layers([int(n) for n in layers]) if layers else "—"


@register.simple_tag
def layer_charts(statistics: dict) -> list[dict]:
    from ..charts import layer_charts as charts

    return charts(statistics or {})


@register.filter
def histogram_svg(histogram: dict | None, title: str = ""):
    from ..charts import histogram_chart

    return histogram_chart(f"Histogram of {title}", histogram)
