"""Template filters and tags of the studio's pages (the formatting itself is in models_app.formatting)."""

from __future__ import annotations

from django import template

from .. import formatting
from ..ml import vocabulary

register = template.Library()


@register.filter
def params(value: int | None) -> str:
    return formatting.params(value)


@register.filter
def bytesize(value: int | float | None) -> str:
    return formatting.bytesize(value)


@register.filter
def speed(value: float | None) -> str:
    return formatting.speed(value)


@register.filter
def duration(seconds: float | None) -> str:
    return formatting.duration(seconds)


@register.filter
def label(fmt: str) -> str:
    from ..ml.quantization import LABELS

    return LABELS.get(fmt, fmt.upper() if fmt else "")


@register.simple_tag
def format_choices() -> list[tuple[str, str]]:
    """(format, label) for every format a model can be downloaded in, in the order menus list them."""
    from ..ml.quantization import FORMATS, LABELS

    return [(fmt, LABELS[fmt]) for fmt in FORMATS]


@register.filter
def hook_label(value: str) -> str:
    return vocabulary.hook_label(value)


@register.filter
def hook_labels(values) -> str:
    return vocabulary.hook_labels(values)


@register.filter
def get(mapping: dict, key: str):
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def duration_of(value) -> str:
    """A timedelta as `duration` writes seconds."""
    return formatting.duration(value.total_seconds()) if value is not None else "—"


@register.filter
def layer_ranges(layers) -> str:
    """[0, 2, 5, 6, 7] -> "0, 2, 5-7", as the template form takes layers back."""
    return formatting.format_layers([int(n) for n in layers]) if layers else "—"


@register.simple_tag
def layer_charts(statistics: dict) -> list[dict]:
    from ..charts import layer_charts as charts

    return charts(statistics or {})


@register.filter
def histogram_svg(histogram: dict | None, title: str = ""):
    from ..charts import histogram_chart

    return histogram_chart(f"Histogram of {title}", histogram)


@register.filter
def percent(share: float | None) -> str:
    return "—" if share is None else f"{100 * share:.0f}%"


@register.filter
def may_change(record, user) -> bool:
    """Whether `user` may change an owned record (buttons shown only to them)."""
    return bool(user is not None and record.may_change(user))


@register.simple_tag
def export_form_for(extraction):
    """A blank export form for an extraction's page, where the view gave none (a live update,
    the whole page): `{% export_form_for extraction as export_form %}`."""
    from ..forms.exports import ExportForm

    return ExportForm(extraction=extraction)


@register.simple_tag
def comparison_candidates(extraction, user):
    """The extractions `user` may compare with `extraction` (Comparison.candidates)."""
    from ..models import Comparison

    return Comparison.candidates(extraction, user)


@register.simple_tag
def comparison_charts(comparison) -> list[dict]:
    """Relative error and cosine across layers, a line per compared format (charts.py)."""
    from ..charts import comparison_charts as charts
    from ..ml.quantization import LABELS

    labels = {
        other[
            "id"
        ]: f"{LABELS.get(other.get('format') or '', other.get('format') or '?')}, extraction {other['id']}"
        for other in (comparison.result or {}).get("others", [])
    }
    return charts(comparison.result or {}, labels)


@register.filter
def hook_key(entry: dict) -> str:
    """{"layer": 3, "hook": "mlp", ...} -> "layer_3_mlp", the (layer, hook)'s key and file name
    (ml.extraction.activation_key, which imports torch: not in the web process)."""
    return f"layer_{int(entry['layer'])}_{entry['hook']}"


@register.filter
def share(value: float | None) -> str:
    """A share as a percentage that keeps small ones visible: 0.3%, 4.2%, 37%."""
    if value is None:
        return "—"
    percent = 100 * value
    if percent == 0 or percent >= 10:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%" if percent >= 0.1 else "<0.1%"


@register.filter
def visible_token(text: str) -> str:
    """A token's text with its whitespace shown (a space, a newline or a tab would be a blank)."""
    return (
        text.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")
        if text.strip() != text or not text
        else text
    )
