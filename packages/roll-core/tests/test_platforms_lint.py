"""Device names live in roll.platforms (as verl's lint keeps them in one module): the rest of roll asks the
platform object, so a plugin platform (roll-ascend's npu) works without edits elsewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import roll

SRC = Path(roll.__file__).resolve().parent
DEVICE_LITERAL = re.compile(r"^(cuda|nccl)(:\d+)?$", re.IGNORECASE)
# (file under roll/, literal) -> why it may stay
ALLOWED = {
    ("config/validate.py", "cuda"): "fa2 needs the flash-attn package, whose kernels are CUDA-only",
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def device_literals(src: Path = SRC) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src).as_posix()
        if rel.startswith("platforms/"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
                and DEVICE_LITERAL.match(node.value.strip())
            ):
                found.append((rel, node.lineno, node.value))
    return found


def test_no_hard_coded_cuda_or_nccl_outside_platforms():
    bad = [
        f"roll/{rel}:{line}: {value!r}"
        for rel, line, value in device_literals()
        if (rel, value) not in ALLOWED
    ]
    assert not bad, "ask roll.platforms.current_platform() instead of naming the device:\n" + "\n".join(bad)


def test_the_lint_sees_a_literal(tmp_path):
    """The scan finds what it bans, outside platforms/ only, and lets docstrings be."""
    (tmp_path / "platforms").mkdir()
    (tmp_path / "platforms" / "cuda.py").write_text('backend = "nccl"\n')
    (tmp_path / "x.py").write_text('"""cuda"""\ndevice = "cuda:0"\nbackend = "NCCL"\n')
    assert device_literals(tmp_path) == [("x.py", 2, "cuda:0"), ("x.py", 3, "NCCL")]


def test_core_imports_nothing_of_plugins():
    """roll_ascend -> roll, never back: plugins are found through the roll.platforms entry points only."""
    users = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if "roll_ascend" in p.read_text()]
    assert users == []
