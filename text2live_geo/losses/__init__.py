"""Loss families: one module each. Every loss is an nn.Module whose docstring gives shapes.

The names below load their module on first use, so `text2live_geo.losses.options` (the losses'
choices, imported by the configs) costs no torch import."""
from __future__ import annotations

from ..common.lazy import lazy_exports

#: exported name -> the module of this package that defines it
_EXPORTS = {
    "DirectionalLoss": "clip_losses", "TextDistanceLoss": "clip_losses", "cosine_distance": "clip_losses",
    "spherical_distance": "clip_losses", "BootstrapLoss": "regularisers", "SparsityLoss": "regularisers",
    "pseudo_l0": "regularisers", "StructureLoss": "structure", "self_similarity": "structure",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
