"""atlas/: the package's modules import each other without cycles and without private names."""

import ast
from pathlib import Path

import atlas

PACKAGE = Path(atlas.__file__).parent


def sibling_imports(path: Path) -> dict[str, list[str]]:
    """Every import of a sibling module anywhere in the module (function bodies and TYPE_CHECKING
    blocks included): `from .x import a`, `from atlas.x import a`, `from . import x`, `import atlas.x`;
    `from atlas import a` counts as importing the package's __init__. Returns sibling -> names."""
    modules = {module.stem for module in PACKAGE.glob("*.py")}
    imports: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and module:
                target = module.split(".")[0]
            elif node.level == 0 and module.startswith("atlas."):
                target = module.split(".")[1]
            elif (node.level == 1 and not module) or (node.level == 0 and module == "atlas"):
                for alias in node.names:
                    imports.setdefault(alias.name if alias.name in modules else "__init__", []).append(alias.name)
                continue
            else:
                continue
            imports.setdefault(target, []).extend(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "atlas" or alias.name.startswith("atlas."):
                    parts = alias.name.split(".")
                    imports.setdefault(parts[1] if len(parts) > 1 else "__init__", []).append(alias.name)
    return imports


def import_graph() -> dict[str, dict[str, list[str]]]:
    """Module -> {sibling it imports: names}, for every module but the package's __init__."""
    return {path.stem: sibling_imports(path) for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def test_graph_sees_the_modules_and_their_imports():
    graph = import_graph()
    assert {"layers", "chunking", "config", "networks", "coordinates", "nla_format", "model", "crops",
            "render"} <= set(graph)
    assert "read_nla_checkpoint" in graph["model"]["nla_format"]


def test_atlas_modules_import_each_other_without_cycles():
    graph = {module: set(imports) for module, imports in import_graph().items()}
    assert all("__init__" not in imports for imports in graph.values()), "a module imports the package itself"
    unknown = {target for imports in graph.values() for target in imports} - set(graph)
    assert not unknown, f"imports of modules that do not exist: {unknown}"
    # Kahn's algorithm: repeatedly take the modules whose imports are all taken
    order, remaining = [], dict(graph)
    while remaining:
        ready = sorted(module for module, imports in remaining.items() if imports <= set(order))
        assert ready, f"import cycle among {sorted(remaining)}: {remaining}"
        order.extend(ready)
        for module in ready:
            del remaining[module]
    # the leaves import nothing from the package
    assert not graph["layers"] and not graph["chunking"] and not graph["config"] and not graph["networks"]


def test_no_atlas_module_imports_a_private_name_of_another():
    private = {(module, target, name) for module, imports in import_graph().items()
               for target, names in imports.items() for name in names if name.split(".")[-1].startswith("_")}
    assert not private, f"private names imported across modules (module, from, name): {sorted(private)}"
