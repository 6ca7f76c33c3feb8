"""How numbers are written for people: parameters ("1.1B"), bytes, speeds, durations and layer
lists. Pure functions, used by records, forms and the template filters alike."""

from __future__ import annotations


def params(value: int | None) -> str:
    if not value:
        return "—"
    for divisor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= divisor:
            scaled = value / divisor
            text = f"{scaled:.1f}" if scaled < 10 else f"{scaled:.0f}"
            return text.removesuffix(".0") + suffix
    return str(value)


def bytesize(value: int | float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def speed(value: float | None) -> str:
    return f"{bytesize(value)}/s" if value else "—"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_layers(layers: list[int]) -> str:
    """[0, 2, 5, 6, 7] -> "0, 2, 5-7": the text the form takes back (runs of 3 or more)."""
    ordered = sorted(set(layers))
    pieces: list[str] = []
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start >= 2:
            pieces.append(f"{ordered[start]}-{ordered[end]}")
        else:
            pieces.extend(str(i) for i in ordered[start : end + 1])
        start = end + 1
    return ", ".join(pieces)
