"""The admin's layers, checked on the import graph: api → service → runtimes/schedulers/store, never back;
test helpers are never imported by the service; a scheduler is a runtime by its methods (the `Runtime`
protocol), never by inheriting from runtimes/; the data plane holds its source of sandboxes (composition)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import rock_admin
from rock_admin.runtimes.base import Runtime

SRC = Path(rock_admin.__file__).resolve().parent
TEST_HELPERS = ("rock_admin.testing", "rock_admin.testing_ray", "rocklet.testing")
# layer → the packages it must not import
FORBIDDEN = {
    "service": ("rock_admin.api",),
    "runtimes": ("rock_admin.api", "rock_admin.service"),
    "schedulers": ("rock_admin.api", "rock_admin.service"),
    "store": ("rock_admin.api", "rock_admin.service", "rock_admin.runtimes", "rock_admin.schedulers"),
}
# layer → the packages whose classes its classes must not subclass (composition or a protocol instead)
NO_BASES_FROM = {
    "schedulers": ("rock_admin.runtimes",),
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
        found += [
            f"{rel}: {c} subclasses {b}"
            for c, b in _bases(path, src)
            if _under(b, NO_BASES_FROM.get(layer, ()))
        ]
        if rel.as_posix() == "runtimes/base.py":
            found += [f"{rel}: imports the implementation {n}" for n in sorted(names) if _impl(n)]
    return found


def _bases(path: Path, src: Path = SRC) -> list[tuple[str, str]]:
    """(class, the absolute name of a base) for each class the file defines, bases resolved through its imports."""
    module = ".".join(("rock_admin", *path.relative_to(src).with_suffix("").parts))
    tree = ast.parse(path.read_text(), filename=str(path))
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level:
            bound |= {(a.asname or a.name): f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            bound |= {
                (a.asname or a.name.split(".")[0]): (a.name if a.asname else a.name.split(".")[0])
                for a in node.names
            }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                head, *rest = ast.unparse(base).split(".")
                found.append((node.name, ".".join([bound.get(head, f"{module}.{head}"), *rest])))
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
    """A service module importing the API layer, a runtime importing a test helper and a scheduler subclassing
    the runtime interface (as `RayScheduler(Runtime)` did) are all reported."""
    for layer in ("service", "runtimes", "schedulers"):
        (tmp_path / layer).mkdir()
    (tmp_path / "service" / "x.py").write_text("from rock_admin.api.app import build\n")
    (tmp_path / "runtimes" / "y.py").write_text("from rocklet.testing import free_port\n")
    (tmp_path / "schedulers" / "z.py").write_text(
        "from rock_admin.runtimes.base import Runtime\n\n\nclass Z(Runtime):\n    pass\n"
    )
    assert violations(tmp_path) == [
        "runtimes/y.py: imports the test helper rocklet.testing",
        "schedulers/z.py: Z subclasses rock_admin.runtimes.base.Runtime",
        "service/x.py: layer service/ imports rock_admin.api.app",
    ]


def test_the_ray_scheduler_has_the_runtime_protocols_methods():
    ray = pytest.importorskip("rock_admin.schedulers.ray")
    methods = [name for name, value in vars(Runtime).items() if inspect.isfunction(value) and name[0] != "_"]
    assert {"start", "stop", "watch", "endpoint", "remove_orphans", "aclose"} <= set(methods)
    for name in methods:
        mine, protocol = getattr(ray.RayScheduler, name), getattr(Runtime, name)
        assert inspect.signature(mine) == inspect.signature(protocol), name
        assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(protocol), name


def test_the_data_plane_is_composed_over_a_source():
    """`SandboxService(DataPlane)` was inheritance; now both sides are `SandboxSource`s a `DataPlane` holds."""
    from rock_admin.service.dataplane import DataPlane, SandboxSource
    from rock_admin.service.lifecycle import SandboxService
    from rock_admin.service.store_source import StoreSource

    methods = [
        name for name, value in vars(SandboxSource).items() if inspect.isfunction(value) and name[0] != "_"
    ]
    assert {"get", "running", "endpoint", "touch", "refresh", "unresponsive", "known", "counts"} <= set(
        methods
    )
    for source in (SandboxService, StoreSource):
        assert DataPlane not in source.__mro__
        for name in methods:
            mine, protocol = getattr(source, name), getattr(SandboxSource, name)
            assert inspect.signature(mine) == inspect.signature(protocol), (source, name)
            assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(protocol), (source, name)
