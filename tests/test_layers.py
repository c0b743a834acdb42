"""The package layers (docs/architecture.md): imports run one way, from a higher layer to a lower one,
and no two modules import each other, directly or around a cycle.

  layer 0  text2live_geo/common/       the shared base
  layer 1  atlas/                      neural layered atlases; imports layer 0 and itself only
  layer 2  the rest of text2live_geo/  the editing library
  layer 3  text2live_geo/apps/         the command lines and the batch driver

The graph is read with `ast` from the source files (nothing is imported): every import anywhere in a
module counts, function bodies included; those under `if TYPE_CHECKING:` do not run and do not count.
"""
from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("text2live_geo", "atlas")
#: top-level names outside the layers: the library never imports them
OUTSIDE = frozenset({"toyworld", "tests", "benchmarks", "scripts", "conftest",
                     "run_image", "run_video", "run_atlas", "run_batch"})
LAYER_NAMES = {0: "common", 1: "atlas", 2: "editing library", 3: "apps"}


# --- reading the graph -------------------------------------------------------------------------

def discover_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py file of the packages (`pkg/__init__.py` is `pkg`)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING` (and the like)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def iter_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth, but not the body of `if TYPE_CHECKING:`
    (its `else:` branch runs, so it counts)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.orelse:
                if isinstance(statement, ast.Import | ast.ImportFrom):
                    yield statement
                else:
                    yield from iter_imports(statement)
        else:
            yield from iter_imports(child)


def resolve_from(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module named by `from <level dots><name> import ...` in `module`: one dot is the
    package holding `module` (the package itself when `module` is a package's __init__)."""
    if level == 0:
        return name or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(parts) - 1:
        raise ValueError(f"{module}: relative import beyond the top-level package (level {level})")
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


def import_targets(module: str, is_package: bool, source: str, known: set[str],
                   filename: str = "<unknown>") -> tuple[set[str], set[str], set[str]]:
    """What `module` imports: (known modules, imports of ours that name no module, outside names).

    `import a.b.c` is an edge to a.b.c; `from pkg import x` is an edge to pkg.x when that is a module
    (a submodule), else to pkg. Parent packages that Python runs on the way (`a`, `a.b`) are not edges:
    a package's __init__ importing its submodule and the submodule importing a sibling is no cycle."""
    targets: set[str] = set()
    unresolved: set[str] = set()
    outside: set[str] = set()

    def add(name: str) -> None:
        top = name.split(".")[0]
        if top in OUTSIDE:
            outside.add(name)
        elif name in known:
            if name != module:
                targets.add(name)
        elif top in PACKAGES and not (ROOT / name.replace(".", "/")).is_dir():  # a namespace package runs nothing
            unresolved.add(name)

    for node in iter_imports(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
            continue
        base = resolve_from(module, is_package, node.level, node.module)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if alias.name != "*" and submodule in known:
                add(submodule)
            elif base in known or base.split(".")[0] not in PACKAGES:
                add(base)
            else:  # a module that does not exist, or a name that no namespace package defines
                unresolved.add(submodule if (ROOT / base.replace(".", "/")).is_dir() else base)
    return targets, unresolved, outside


@functools.cache
def package_graph() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """(module -> modules it imports, module -> unresolved imports, module -> outside imports) for
    every module of text2live_geo and atlas."""
    modules = discover_modules()
    known = set(modules)
    graph, unresolved, outside = {}, {}, {}
    for name, path in modules.items():
        targets, missing, foreign = import_targets(name, path.name == "__init__.py",
                                                   path.read_text(encoding="utf-8"), known, str(path))
        graph[name] = targets
        if missing:
            unresolved[name] = missing
        if foreign:
            outside[name] = foreign
    return graph, unresolved, outside


def edges_of(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((source, target) for source, targets in graph.items() for target in targets)


# --- the rules -----------------------------------------------------------------------------------

def layer_of(module: str) -> int:
    """0: text2live_geo.common*, 1: atlas*, 3: text2live_geo.apps*, 2: the rest of text2live_geo."""
    def within(package: str) -> bool:
        return module == package or module.startswith(package + ".")

    if within("text2live_geo.common"):
        return 0
    if within("atlas"):
        return 1
    if within("text2live_geo.apps"):
        return 3
    if within("text2live_geo"):
        return 2
    raise ValueError(f"{module} belongs to no layer")


def upward_imports(edges: Iterable[tuple[str, str]]) -> list[str]:
    """'a -> b' for every edge from a lower layer to a higher one."""
    return sorted(f"{source} -> {target}  (layer {layer_of(source)} {LAYER_NAMES[layer_of(source)]} imports "
                  f"layer {layer_of(target)} {LAYER_NAMES[layer_of(target)]})"
                  for source, target in edges if layer_of(source) < layer_of(target))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the strongly connected components, each sorted."""
    nodes = sorted(set(graph) | {target for targets in graph.values() for target in targets})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle [a, b, ..., a] for each strongly connected component with more than one module (or a
    module importing itself): the shortest way from its first module back to it."""
    cycles = []
    for component in strongly_connected(graph):
        start = component[0]
        if len(component) == 1 and start not in graph.get(start, ()):
            continue
        members = set(component)
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:  # breadth first, inside the component
            following = []
            for node in frontier:
                for child in sorted(graph.get(node, ())):
                    if child in members and child not in previous:
                        previous[child] = node
                        following.append(child)
            frontier = following
        path = [start]
        while path[-1] != start or len(path) == 1:
            path.append(previous[path[-1]])
        cycles.append(path[::-1])
    return cycles


def describe(cycles: list[list[str]]) -> str:
    return "\n".join(" -> ".join(cycle) for cycle in cycles)


# --- the tests -----------------------------------------------------------------------------------

def test_the_graph_sees_the_modules_and_their_imports():
    """The graph holds every module of both packages (more than 40) and a fair number of edges, each
    between known modules, and every import of text2live_geo/atlas names a module that exists."""
    graph, unresolved, _ = package_graph()
    assert len(graph) > 40, sorted(graph)
    assert {"atlas", "atlas.fitting.fit", "text2live_geo", "text2live_geo.common.errors",
            "text2live_geo.editing.base", "text2live_geo.apps.cli"} <= set(graph)
    edges = edges_of(graph)
    assert len(edges) > 60, edges
    assert all(target in graph for _, target in edges)
    assert {layer_of(module) for module in graph} == {0, 1, 2, 3}
    assert not unresolved, f"imports of modules that do not exist: {unresolved}"


def test_imports_run_from_higher_layers_to_lower_ones():
    """No module imports one of a higher layer: common imports nothing of ours but common, atlas only
    common and itself, the editing library no app."""
    graph, _, _ = package_graph()
    violations = upward_imports(edges_of(graph))
    assert not violations, "imports from a lower layer to a higher one:\n" + "\n".join(violations)


def test_the_packages_import_nothing_outside_the_layers():
    """text2live_geo and atlas import none of toyworld, tests, benchmarks, scripts or the run_*.py wrappers."""
    _, _, outside = package_graph()
    assert not outside, f"imports of code outside the installed layers: {outside}"


def test_no_import_cycles():
    """No module reaches itself through imports (a package's __init__ importing its submodules is fine)."""
    graph, _, _ = package_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + describe(cycles)


def test_importing_all_of_atlas_loads_only_the_common_base():
    """`import atlas` and every atlas module (walked with pkgutil) load no text2live_geo module but the
    package itself and text2live_geo.common*; `import atlas.settings` alone loads no torch."""
    script = """if True:
        import importlib, json, pkgutil, sys
        import atlas.settings
        torch_for_settings = "torch" in sys.modules
        import atlas
        def fail(name):
            raise ImportError(f"cannot import {name}")
        names = [info.name for info in pkgutil.walk_packages(atlas.__path__, "atlas.", onerror=fail)]
        for name in names:
            importlib.import_module(name)
        ours = sorted(name for name in sys.modules if name.split(".")[0] == "text2live_geo")
        print(json.dumps({"file": atlas.__file__, "modules": names, "ours": ours,
                          "torch_for_settings": torch_for_settings}))
    """
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).resolve().is_relative_to(ROOT / "atlas")
    assert {"atlas.settings", "atlas.model", "atlas.fitting", "atlas.fitting.fit"} <= set(report["modules"])
    allowed = {"text2live_geo", "text2live_geo.common"}
    loaded = [name for name in report["ours"] if name not in allowed and not name.startswith("text2live_geo.common.")]
    assert not loaded, f"importing atlas loaded modules above the base: {loaded}"
    assert not report["torch_for_settings"], "`import atlas.settings` imported torch"


# --- the checker itself -----------------------------------------------------------------------------

def test_the_checker_reports_upward_imports_and_cycles():
    """Synthetic edges: atlas -> editing, common -> atlas and library -> apps are reported and the
    downward ones are not; a 2-cycle and a 3-cycle are found, a package __init__ over its submodules is not."""
    edges = [
        ("atlas.x", "text2live_geo.editing.y"),  # up: 1 -> 2
        ("text2live_geo.common.io", "atlas.model"),  # up: 0 -> 1
        ("text2live_geo.clip", "text2live_geo.apps.cli"),  # up: 2 -> 3
        ("text2live_geo.apps.cli", "atlas.model"),  # down
        ("text2live_geo.editing.y", "text2live_geo.common.io"),  # down
        ("atlas.model", "atlas.layers"),  # within a layer
    ]
    assert [line.split("  ")[0] for line in upward_imports(edges)] == [
        "atlas.x -> text2live_geo.editing.y",
        "text2live_geo.clip -> text2live_geo.apps.cli",
        "text2live_geo.common.io -> atlas.model",
    ]
    graph = {
        "text2live_geo.editing": {"text2live_geo.editing.a", "text2live_geo.editing.b"},  # __init__
        "text2live_geo.editing.a": {"text2live_geo.editing.b"},
        "text2live_geo.editing.b": {"text2live_geo.editing.a"},  # 2-cycle
        "atlas.p": {"atlas.q"}, "atlas.q": {"atlas.r"}, "atlas.r": {"atlas.p", "atlas.s"},  # 3-cycle
        "atlas.s": set(),
    }
    assert find_cycles(graph) == [["atlas.p", "atlas.q", "atlas.r", "atlas.p"],
                                  ["text2live_geo.editing.a", "text2live_geo.editing.b", "text2live_geo.editing.a"]]
    del graph["text2live_geo.editing.b"], graph["atlas.r"]
    assert find_cycles(graph) == []
    assert find_cycles({"atlas.x": {"atlas.x"}}) == [["atlas.x", "atlas.x"]]


def test_the_checker_resolves_imports_as_python_does():
    """Relative imports from a module and from a package __init__, `from . import submodule` versus a
    name, imports inside functions and the else of TYPE_CHECKING count; the TYPE_CHECKING body does not."""
    known = {"text2live_geo", "text2live_geo.config", "text2live_geo.editing", "text2live_geo.editing.base",
             "text2live_geo.editing.image", "text2live_geo.common.io", "text2live_geo.apps.cli", "atlas",
             "atlas.model"}
    source = """
from typing import TYPE_CHECKING
import numpy as np
from . import base
from . import helper_name
from .. import config
from ..common.io import read_image
if TYPE_CHECKING:
    from ...atlas import model
    import text2live_geo.apps.cli
else:
    import atlas.model

def later():
    import toyworld.world
    from text2live_geo.missing import thing
"""
    targets, unresolved, outside = import_targets("text2live_geo.editing.image", False, source, known)
    assert targets == {"text2live_geo.editing.base", "text2live_geo.editing", "text2live_geo.config",
                       "text2live_geo.common.io", "atlas.model"}
    assert outside == {"toyworld.world"}
    assert unresolved == {"text2live_geo.missing"}
    # in a package's __init__ one dot is the package itself
    targets, _, _ = import_targets("text2live_geo.editing", True, "from .image import x\nfrom . import base\n", known)
    assert targets == {"text2live_geo.editing.image", "text2live_geo.editing.base"}
    assert resolve_from("text2live_geo.apps.cli", True, 3, "common.io") == "text2live_geo.common.io"
    assert resolve_from("text2live_geo.apps.cli.image", False, 2, None) == "text2live_geo.apps"
