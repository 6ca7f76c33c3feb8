"""The neuron page's filters: a share keeps small values visible, and a token made of whitespace
shows what it is rather than a blank cell."""

from __future__ import annotations

from models_app.templatetags.studio import share, visible_token


def test_a_small_share_is_not_rounded_away():
    assert [share(v) for v in (0.0, 0.0003, 0.003, 0.042, 0.37, 1.0, None)] == [
        "0%",
        "<0.1%",
        "0.3%",
        "4.2%",
        "37%",
        "100%",
        "—",
    ]


def test_whitespace_in_a_token_is_shown():
    assert [visible_token(t) for t in (" the", "\n", "\t", "", "word")] == ["␣the", "⏎", "⇥", "", "word"]
