"""The toy world is research tooling next to the product: `toyworld` may import the product
(`text2live_geo`), never the other way round."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_product_imports_nothing_from_the_toy_world():
    offenders = [f"{path.relative_to(ROOT)}: {name}"
                 for package in ("text2live_geo", "atlas") for path in sorted((ROOT / package).rglob("*.py"))
                 for name in _imported_modules(path) if name == "toyworld" or name.startswith("toyworld.")]
    assert offenders == []
    assert not (ROOT / "text2live_geo" / "toyworld").exists()


def test_training_entry_points():
    from toyworld.training import TrainConfig, train

    assert TrainConfig().out == "data/toy_clip" and callable(train)
