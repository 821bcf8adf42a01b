"""Pipelines as one line of text: what the mapping editor shows and what it reads back."""

from __future__ import annotations

import pytest

from hub.admin.pipelines import PipelineSyntaxError, parse, to_text

STEPS = [
    [],
    [{"name": "trim"}, {"name": "lower"}],
    [{"name": "minor_to_decimal", "currency": "DKK"}],
    [{"name": "enum_map", "values": {"active": "Active", "none": "Prospect"}, "reverse": True}],
    [{"name": "constant", "value": None}, {"name": "default", "value": -3}],
    [{"name": "join_text", "separator": " | "}],
    [{"name": "constant", "value": ["ø", 1.5, False]}],
]


@pytest.mark.parametrize("steps", STEPS)
def test_what_the_editor_shows_reads_back_as_the_same_steps(steps: list[dict[str, object]]) -> None:
    assert parse(to_text(steps)) == steps


def test_steps_read_as_people_write_them() -> None:
    assert to_text([{"name": "trim"}, {"name": "split_name"}]) == "trim | split_name"
    assert parse('  trim|upper | minor_to_decimal( currency = "EUR" ) ') == [
        {"name": "trim"},
        {"name": "upper"},
        {"name": "minor_to_decimal", "currency": "EUR"},
    ]
    assert parse("  ") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trim |", "write the steps like"),
        ('minor_to_decimal("DKK")', "name each parameter of minor_to_decimal"),
        ("constant(value=os.environ)", "parameter values are JSON"),
        ('__import__("os").system("true")', "each step is a transform's name"),
        ("trim + lower", "each step is a transform's name"),
        ("enum_map(values={1: 2})", "parameter values are JSON"),
        ("constant(**{'a': 1})", "cannot be read"),
    ],
)
def test_anything_else_is_refused_with_a_message_and_never_run(text: str, message: str) -> None:
    with pytest.raises(PipelineSyntaxError, match=message):
        parse(text)
