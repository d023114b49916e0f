"""The admin's layers, checked on the import graph: api → service → runtimes/schedulers/store, never back;
test helpers are never imported by the service."""

from __future__ import annotations

import ast
from pathlib import Path

import rock_admin

SRC = Path(rock_admin.__file__).resolve().parent
TEST_HELPERS = ("rock_admin.testing", "rock_admin.testing_ray", "rocklet.testing")
# layer → the packages it must not import
FORBIDDEN = {
    "service": ("rock_admin.api",),
    "runtimes": ("rock_admin.api", "rock_admin.service"),
    "schedulers": ("rock_admin.api", "rock_admin.service"),
    "store": ("rock_admin.api", "rock_admin.service", "rock_admin.runtimes", "rock_admin.schedulers"),
}


def imports_of(path: Path, src: Path = SRC) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against rock_admin)."""
    package = ".".join(("rock_admin", *path.relative_to(src).parent.parts))
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(src: Path = SRC) -> list[str]:
    found = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if rel.parts[0].startswith("testing"):
            continue
        names = imports_of(path, src)
        found += [f"{rel}: imports the test helper {n}" for n in _outermost(names, TEST_HELPERS)]
        layer = rel.parts[0]
        found += [f"{rel}: layer {layer}/ imports {n}" for n in _outermost(names, FORBIDDEN.get(layer, ()))]
        if rel.as_posix() == "runtimes/base.py":
            found += [f"{rel}: imports the implementation {n}" for n in sorted(names) if _impl(n)]
    return found


def _outermost(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    """The names under `prefixes`, without `m.x` where `m` is reported too (`from m import x` gives both)."""
    hits = {n for n in names if _under(n, prefixes)}
    return sorted(n for n in hits if not any(n.startswith(m + ".") for m in hits))


def _impl(name: str) -> bool:
    return _under(name, ("rock_admin.runtimes.process", "rock_admin.runtimes.docker"))


def test_layers_import_downwards_only():
    assert violations() == []


def test_the_check_sees_a_violation(tmp_path):
    """A service module importing the API layer and a runtime importing a test helper are both reported."""
    (tmp_path / "service").mkdir()
    (tmp_path / "runtimes").mkdir()
    (tmp_path / "service" / "x.py").write_text("from rock_admin.api.app import build\n")
    (tmp_path / "runtimes" / "y.py").write_text("from rocklet.testing import free_port\n")
    assert violations(tmp_path) == [
        "runtimes/y.py: imports the test helper rocklet.testing",
        "service/x.py: layer service/ imports rock_admin.api.app",
    ]
