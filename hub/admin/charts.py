"""Chart geometry, computed on the server: the templates draw it as inline SVG (no script, no CDN).

Only numbers leave this module; labels are escaped by Jinja like any other text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 8, 8, 12, 28  # margins for the axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str  # a CSS class: new, expansion, reactivation, contraction, churned
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Line:
    series: str
    points: str  # "x,y x,y …" for <polyline points>
    dots: list[tuple[float, float, str]]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    zero_y: float
    bars: list[Bar]
    lines: list[Line]
    ticks: list[Tick]
    legend: list[tuple[str, str]]  # (series, label)
    top_label: str = ""  # the value at the top of the drawing area
    top_y: float = TOP


def _slots(count: int) -> tuple[float, float]:
    """The width of one bucket's slot and of its bar."""
    slot = (WIDTH - LEFT - RIGHT) / max(count, 1)
    return slot, slot * 0.6


def _scale(top: float, bottom: float) -> Callable[[float], float]:
    """Value → y pixel, with ``top`` at the top margin and ``bottom`` at the bottom margin."""
    span = (top - bottom) or 1
    inner = HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return round(TOP + (top - value) / span * inner, 2)

    return y


def stacked_movements(
    labels: Sequence[str],
    up: dict[str, Sequence[int]],
    down: dict[str, Sequence[int]],
    names: dict[str, str],
    describe: Callable[[int], str],
) -> Chart:
    """Bars per bucket: the ``up`` series stacked above zero, the ``down`` series below it."""
    count = len(labels)
    highs = [sum(series[i] for series in up.values()) for i in range(count)]
    lows = [sum(series[i] for series in down.values()) for i in range(count)]
    y = _scale(max([*highs, 1]), -max([*lows, 0]))
    slot, bar_width = _slots(count)
    bars = []
    for i in range(count):
        x = round(LEFT + i * slot + (slot - bar_width) / 2, 2)
        level = 0
        for series, values in up.items():
            if values[i]:
                bars.append(
                    Bar(
                        x,
                        y(level + values[i]),
                        bar_width,
                        y(level) - y(level + values[i]),
                        series,
                        f"{labels[i]}: {names[series]} {describe(values[i])}",
                    )
                )
                level += values[i]
        level = 0
        for series, values in down.items():
            if values[i]:
                bars.append(
                    Bar(
                        x,
                        y(level),
                        bar_width,
                        y(level - values[i]) - y(level),
                        series,
                        f"{labels[i]}: {names[series]} −{describe(values[i])}",
                    )
                )
                level -= values[i]
    legend = [(series, names[series]) for series in [*up, *down]]
    top = max([*highs, 1])
    return Chart(WIDTH, HEIGHT, y(0), bars, [], _ticks(labels, slot), legend, describe(top))


def lines(
    labels: Sequence[str],
    series: dict[str, Sequence[Decimal | int | None]],
    names: dict[str, str],
    describe: Callable[[Decimal | int], str],
) -> Chart:
    """One polyline per series (a missing value breaks nothing: it is left out)."""
    given = [v for s in series.values() for v in s if v is not None]
    top = max([*given, 0]) or 1
    y = _scale(float(top), float(min([*given, 0])))
    slot, _ = _slots(len(labels))
    drawn = []
    for name, points in series.items():
        dots = [
            (round(LEFT + (i + 0.5) * slot, 2), y(float(v)), f"{labels[i]}: {names[name]} {describe(v)}")
            for i, v in enumerate(points)
            if v is not None
        ]
        drawn.append(Line(name, " ".join(f"{x},{yy}" for x, yy, _ in dots), dots))
    legend = [(n, names[n]) for n in series]
    return Chart(WIDTH, HEIGHT, y(0), [], drawn, _ticks(labels, slot), legend, describe(top) if given else "")


def _ticks(labels: Sequence[str], slot: float) -> list[Tick]:
    every = max(1, len(labels) // 12)  # at most about twelve labels, whatever the bucket count
    return [
        Tick(round(LEFT + (i + 0.5) * slot, 2), label) for i, label in enumerate(labels) if i % every == 0
    ]
