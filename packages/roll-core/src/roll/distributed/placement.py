"""`device_mapping` parsing (never `eval`) and the placement plan of the roles.

ROLL writes device mappings as Python snippets (`list(range(0,8))`); we accept that grammar and a little
more (`[0, 1]`, `range(0, 4)`, `list(range(0, 8, 2))`, `0,1,2`, `a + b` concatenation, plain ints) by
walking the expression's syntax tree, and refuse anything else with a message.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from roll.errors import DeviceMappingError


def _eval_node(node: ast.AST, text: str) -> list[int] | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        raise DeviceMappingError(f"device ids must be >= 0 in {text!r}")
    if isinstance(node, (ast.List, ast.Tuple)):
        out: list[int] = []
        for elt in node.elts:
            value = _eval_node(elt, text)
            if isinstance(value, list):
                raise DeviceMappingError(f"nested lists are not allowed in {text!r}")
            out.append(value)
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _eval_node(node.left, text), _eval_node(node.right, text)
        if isinstance(left, list) and isinstance(right, list):
            return left + right
        if isinstance(left, int) and isinstance(right, int):
            return left + right
        raise DeviceMappingError(f"cannot add a list and a number in {text!r}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_eval_node(a, text) for a in node.args]
        if node.func.id == "range":
            if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
                raise DeviceMappingError(f"range() takes 1 to 3 integers in {text!r}")
            return list(range(*args))  # type: ignore[arg-type]
        if node.func.id == "list" and len(args) == 1 and isinstance(args[0], list):
            return args[0]
    raise DeviceMappingError(
        f"unsupported device_mapping expression {text!r}: use a YAML list of ints, 'list(range(a,b))', "
        "'range(a,b[,step])', '[0,1,...]' or '0,1,...' (the value is parsed, never evaluated)"
    )


def parse_device_mapping(value: Any) -> list[int] | None:
    """A device_mapping value as a list of global device ids, or None for a CPU-only role."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DeviceMappingError(f"device_mapping must be a list of device ids, got {value!r}")
    if isinstance(value, int):
        ids: list[int] | int = [value]
    elif isinstance(value, (list, tuple)):
        ids = list(value)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise DeviceMappingError(f"device_mapping list must hold integers, got {value!r}")
    elif isinstance(value, str):
        text = value.strip()
        if text in ("", "None", "null", "~"):
            return None
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise DeviceMappingError(f"cannot parse device_mapping {value!r}: {exc.msg}") from None
        body = tree.body
        ids = _eval_node(body, text)
        if isinstance(ids, int):
            ids = [ids]
    else:
        raise DeviceMappingError(f"device_mapping must be a list or a string, got {type(value).__name__}")
    if any(i < 0 for i in ids):
        raise DeviceMappingError(f"device ids must be >= 0, got {ids}")
    if len(set(ids)) != len(ids):
        raise DeviceMappingError(f"device_mapping repeats a device: {ids}")
    return ids


@dataclass
class RolePlacement:
    """Where one role's workers go: device ids (None = CPU) and how many workers (DP ranks)."""

    role: str
    strategy: str
    devices: list[int] | None
    world_size: int
    colocated_with: list[str] = field(default_factory=list)

    def describe(self) -> str:
        where = f"devices {self.devices}" if self.devices is not None else "cpu"
        extra = f", colocated with {', '.join(self.colocated_with)}" if self.colocated_with else ""
        return f"{self.role:<12} {self.strategy:<16} world_size={self.world_size:<3} {where}{extra}"


def colocation(placements: list[RolePlacement]) -> None:
    """Fill `colocated_with` for roles whose device sets overlap."""
    for p in placements:
        p.colocated_with = [
            q.role
            for q in placements
            if q is not p and p.devices and q.devices and set(p.devices) & set(q.devices)
        ]
