"""Transform pipelines as one line of text, the way the mapping editor shows and reads them.

``trim | lower`` is ``[{"name": "trim"}, {"name": "lower"}]``; parameters go in parentheses with JSON
values: ``minor_to_decimal(currency="DKK")``, ``enum_map(values={"active": "Active"}, reverse=true)``.
An empty line is the identity (``[]``). The text is read with Python's own expression parser (``a | b``
is an expression), and only literals are accepted as values, so nothing in it is ever run. Whether a
transform exists and takes those parameters is for ``mappings.transforms`` to say, with its own messages.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from typing import Any

EXAMPLE = 'trim | lower | minor_to_decimal(currency="DKK")'
_WORDS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class PipelineSyntaxError(ValueError):
    """The text is not a pipeline; the message says what was expected."""


def to_text(steps: Sequence[dict[str, Any]] | None) -> str:
    return " | ".join(_step_text(step) for step in steps or [])


def _step_text(step: dict[str, Any]) -> str:
    name = str(step.get("name", ""))
    params = [
        f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in step.items() if key != "name"
    ]
    return f"{name}({', '.join(params)})" if params else name


def parse(text: str) -> list[dict[str, Any]]:
    """The steps the text names, in order; raises ``PipelineSyntaxError`` when it is not a pipeline."""
    if not text.strip():
        return []
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise PipelineSyntaxError(f"write the steps like {EXAMPLE}") from None
    return [_step(node) for node in _operands(tree.body)]


def _operands(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_operands(node.left), *_operands(node.right)]
    return [node]


def _step(node: ast.expr) -> dict[str, Any]:
    if isinstance(node, ast.Name):
        return {"name": node.id}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.args:
            raise PipelineSyntaxError(
                f'name each parameter of {node.func.id}, e.g. {node.func.id}(currency="DKK")'
            )
        step: dict[str, Any] = {"name": node.func.id}
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg == "name":
                raise PipelineSyntaxError(f"{node.func.id} has a parameter that cannot be read")
            step[keyword.arg] = _literal(keyword.value)
        return step
    raise PipelineSyntaxError(f"each step is a transform's name, optionally with parameters: {EXAMPLE}")


def _literal(node: ast.expr) -> Any:
    """A JSON-like value: text, number, true/false/null, a list or an object with text keys."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
        return node.value
    if isinstance(node, ast.Name) and node.id in _WORDS:
        return _WORDS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        keys = [_literal(key) if key is not None else None for key in node.keys]
        if all(isinstance(key, str) for key in keys):
            return {key: _literal(value) for key, value in zip(keys, node.values, strict=True)}
    raise PipelineSyntaxError('parameter values are JSON: "text", 12, true, null, [..] or {"key": ..}')
