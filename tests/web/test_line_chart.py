"""charts.line_chart, the comparison page's chart: a line per series over the layers any of them
has, each point where its value puts it, its value in a tooltip, labels escaped."""

from __future__ import annotations

import re

from models_app.charts import HEIGHT, LEFT, LEGEND_ROOM, PLOT_H, PLOT_W, TOP, Series, line_chart


def points(svg: str) -> list[list[tuple[float, float]]]:
    lines = re.findall(r'<polyline class="line [^"]+" points="([^"]*)"', svg)
    return [[(float(x), float(y)) for x, y in (pair.split(",") for pair in line.split())] for line in lines]


def test_each_series_is_a_line_scaled_to_the_largest_value_below_the_legend():
    svg = line_chart("Error", [Series("Q8", {0: 0.5, 2: 1.0}), Series("Q4", {0: 2.0, 1: 1.0, 2: 0.0})])
    q8, q4 = points(svg)
    step = PLOT_W / 2  # three layers: 0, 1, 2
    bottom, tallest = TOP + PLOT_H, PLOT_H * (1 - LEGEND_ROOM)  # the largest value's height

    def near(found, expected):
        return all(
            abs(a - b) <= 0.05
            for p, q in zip(found, expected, strict=True)
            for a, b in zip(p, q, strict=True)
        )

    assert near(
        q8, [(LEFT, bottom - tallest * 0.25), (LEFT + 2 * step, bottom - tallest * 0.5)]
    )  # no layer 1
    assert near(
        q4, [(LEFT, bottom - tallest), (LEFT + step, bottom - tallest * 0.5), (LEFT + 2 * step, bottom)]
    )
    assert "<title>Q4, L1: 1</title>" in svg and "<title>Q8, L2: 1</title>" in svg
    assert ">Q8</text>" in svg and ">Q4</text>" in svg and f'y="{HEIGHT - 10}"' in svg


def test_labels_are_escaped_and_an_empty_chart_draws_nothing():
    svg = line_chart("<b>", [Series("<script>", {3: 1.0})])
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg
    assert line_chart("Nothing", [Series("Q4", {})]) == ""
