"""Charts of an extraction's statistics, drawn on the server as inline SVG (no JS build, readable
without script, printable). Every label is escaped; numbers are formatted here."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .ml.vocabulary import hook_label

WIDTH, HEIGHT = 420, 180
LEFT, BOTTOM, TOP = 62, 28, 12  # room for the value axis ("6.46e-03"), the bar labels and the top value
PLOT_W, PLOT_H = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP


@dataclass
class Bar:
    label: str
    value: float | None
    title: str = ""  # tooltip


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.2e}"
    return f"{value:.3g}"


def _frame(css_class: str, title: str, top_label: str) -> list[str]:
    """The opening of a chart: the svg element with its accessible title, the baseline and the
    label of the top of the value axis (`top_label` is already escaped or a number)."""
    return [
        f'<svg class="{css_class}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + PLOT_H}" x2="{WIDTH - 8}" y2="{TOP + PLOT_H}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">{top_label}</text>',
    ]


def bar_chart(title: str, bars: list[Bar], unit: str = "") -> SafeString:
    """One bar per entry (a layer), scaled to the largest value; missing values leave a gap."""
    values = [b.value for b in bars if b.value is not None]
    top = max([v for v in values if v > 0], default=1.0)
    slot = PLOT_W / max(len(bars), 1)
    parts = _frame("chart", title, f"{_number(top)}{escape(unit)}") + [
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + PLOT_H}" text-anchor="end">0</text>'
    ]
    for i, bar in enumerate(bars):
        x = LEFT + i * slot + slot * 0.15
        if bar.value is not None:
            h = max(PLOT_H * max(bar.value, 0) / top, 0.5)
            tip = bar.title or f"{bar.label}: {_number(bar.value)}{unit}"
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{TOP + PLOT_H - h:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{h:.1f}"><title>{escape(tip)}</title></rect>'
            )
        parts.append(
            f'<text class="tick" x="{x + slot * 0.35:.1f}" y="{HEIGHT - 10}" '
            f'text-anchor="middle">{escape(bar.label)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def histogram_chart(title: str, histogram: dict | None) -> SafeString:
    """Counts per fixed bin (see ml.histogram.Histogram), on a square-root scale so the tails show
    next to the peak; values outside the bins are said under the chart by the page."""
    if not histogram or not histogram.get("counts"):
        return mark_safe("")
    edges, counts = histogram["edges"], histogram["counts"]
    top = max(counts) or 1
    slot = PLOT_W / len(counts)
    parts = _frame("chart histogram", title, f"{top:,}")
    for i, count in enumerate(counts):
        h = PLOT_H * (count / top) ** 0.5 if count else 0
        tip = f"[{_number(edges[i])}, {_number(edges[i + 1])}): {count:,} values"
        parts.append(
            f'<rect class="bin" x="{LEFT + i * slot:.1f}" y="{TOP + PLOT_H - h:.1f}" '
            f'width="{max(slot - 1, 0.5):.1f}" height="{h:.1f}"><title>{escape(tip)}</title></rect>'
        )
    parts += [
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 10}">{_number(edges[0])}</text>',
        f'<text class="tick" x="{WIDTH - 8}" y="{HEIGHT - 10}" text-anchor="end">{_number(edges[-1])}</text>',
        "</svg>",
    ]
    return mark_safe("".join(parts))


def layer_charts(statistics: dict) -> list[dict]:
    """For each hook type: mean |x| and sparsity with one bar per layer, in layer order."""
    by_hook: dict[str, list[dict]] = {}
    for stats in statistics.values():
        by_hook.setdefault(stats["hook"], []).append(stats)
    charts = []
    for hook, rows in by_hook.items():
        rows.sort(key=lambda s: s["layer"])
        charts.append(
            {
                "hook": hook,
                "mean_abs": bar_chart(
                    f"Mean |x| by layer, {hook_label(hook)}",
                    [Bar(f"L{s['layer']}", s.get("mean_abs")) for s in rows],
                ),
                "sparsity": bar_chart(
                    f"Sparsity by layer, {hook_label(hook)}",
                    [Bar(f"L{s['layer']}", s.get("sparsity_percent")) for s in rows],
                    "%",
                ),
            }
        )
    return charts


@dataclass
class Series:
    name: str  # the legend's label, e.g. a format
    points: dict[int, float]  # x (a layer) -> y


SERIES_CLASSES = 4  # CSS colours series-0 .. series-3, then they repeat


LEGEND_ROOM = 0.2  # the top fifth of the plot holds the legend, above every line


def line_chart(title: str, series: list[Series], unit: str = "", x_prefix: str = "L") -> SafeString:
    """One line per series over the x values any of them has (layers), scaled from 0 to the
    largest value, with the top of the plot left to the legend that names the lines; each point
    has its value as a tooltip."""
    xs = sorted({x for s in series for x in s.points})
    values = [v for s in series for v in s.points.values()]
    if not xs or not values:
        return mark_safe("")
    top = max([v for v in values if v > 0], default=1.0) / (1 - LEGEND_ROOM)
    step = PLOT_W / max(len(xs) - 1, 1)

    def at(x: int, value: float) -> tuple[float, float]:
        px = LEFT + (xs.index(x) * step if len(xs) > 1 else PLOT_W / 2)
        return px, TOP + PLOT_H - PLOT_H * max(min(value / top, 1.0), 0.0)

    parts = _frame("chart line-chart", title, f"{_number(top)}{escape(unit)}") + [
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + PLOT_H}" text-anchor="end">0</text>'
    ]
    for x in xs:
        px, _ = at(x, 0)
        parts.append(
            f'<text class="tick" x="{px:.1f}" y="{HEIGHT - 10}" text-anchor="middle">{x_prefix}{x}</text>'
        )
    slot = (WIDTH - 8 - LEFT) / max(len(series), 1)
    for i, line in enumerate(series):
        css = f"series-{i % SERIES_CLASSES}"
        points = [at(x, line.points[x]) for x in xs if x in line.points]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline class="line {css}" points="{path}"/>')
        for x in xs:
            if x in line.points:
                px, py = at(x, line.points[x])
                tip = f"{line.name}, {x_prefix}{x}: {_number(line.points[x])}{unit}"
                parts.append(
                    f'<circle class="dot {css}" cx="{px:.1f}" cy="{py:.1f}" r="3">'
                    f"<title>{escape(tip)}</title></circle>"
                )
        legend_x = LEFT + 4 + i * slot
        parts.append(
            f'<text class="legend {css}" x="{legend_x:.1f}" y="{TOP + 10}">{escape(line.name)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def comparison_charts(result: dict, labels: dict[int, str]) -> list[dict]:
    """For each hook type of a comparison's result: relative error and 1 - mean cosine across
    layers (both 0 where a format changes nothing), one line per compared extraction (named by
    `labels`, extraction id -> e.g. "Q4, extraction 7")."""
    others = result.get("others", [])
    hooks = list(dict.fromkeys(h["hook"] for other in others for h in other["hooks"]))
    charts = []
    for hook in hooks:
        charts.append(
            {
                "hook": hook,
                "relative_error": line_chart(
                    f"Relative error by layer, {hook_label(hook)}",
                    _lines(others, hook, labels, lambda h: h.get("relative_error")),
                ),
                "cosine": line_chart(
                    f"1 - mean cosine by layer, {hook_label(hook)}",
                    _lines(
                        others, hook, labels, lambda h: None if h.get("cosine") is None else 1 - h["cosine"]
                    ),
                ),
            }
        )
    return charts


def _lines(others: list[dict], hook: str, labels: dict[int, str], figure) -> list[Series]:
    """A series per compared extraction: `figure(entry)` at each layer of `hook` (None: left out)."""
    return [
        Series(
            labels.get(other["id"], str(other["id"])),
            {h["layer"]: figure(h) for h in other["hooks"] if h["hook"] == hook and figure(h) is not None},
        )
        for other in others
    ]
