"""Lazy package exports (PEP 562): a package names what it exports and the submodule of each name,
and a name's submodule is imported on its first use. So importing one light submodule of the
package (`atlas.settings`, `text2live_geo.losses.options`) does not import all the others."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module `__getattr__` of `package`: `exports` maps each exported name to the submodule
    (relative to the package) that defines it; a looked-up name is cached in the package."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    return __getattr__
