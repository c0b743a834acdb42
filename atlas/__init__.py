"""Neural layered atlases (NLA, Kasten et al. 2021): networks, the public checkpoint format,
per-pixel queries, baking atlases to images, rendering frames back, and edit-region crops.

Conventions are described in ``docs/atlas.md``; see :mod:`atlas.model` (coordinates) and
:mod:`atlas.coordinates` (atlas pixels and ``grid_sample`` grids).
"""

# The modules, lowest first; each imports only modules listed before it (tests/test_layers.py):
#   layers (Layer, uv offsets), chunking (pixel chunks, progress), config (config.json sizes),
#   settings (fitting settings), networks (IMLP) -> coordinates (atlas pixels, PixelBox)
#   -> nla_format (the public checkpoint) -> model (NeuralAtlas, AtlasMaps) -> crops (regions worth
#   editing), render (sample, render, PSNR) -> testing (tiny atlases).
# The names below load their module on first use, so `atlas.settings` or `atlas.layers` alone cost
# no torch import (the batch driver reads the settings without torch).
from __future__ import annotations

from text2live_geo.common.lazy import lazy_exports

#: exported name -> the module of this package that defines it
_EXPORTS = {
    "ATLAS_SKIP_LAYERS": "config", "AtlasConfig": "config",
    "PixelBox": "coordinates", "atlas_pixels_to_grid": "coordinates", "uv_bounding_box": "coordinates",
    "uv_to_atlas_pixels": "coordinates", "uv_to_grid": "coordinates",
    "LayerCropRegions": "crops", "NoForegroundError": "crops", "atlas_region": "crops",
    "foreground_frame_boxes": "crops", "layer_crop_regions": "crops", "suggested_resolution": "crops",
    "frame_uv_extents": "crops", "region_pixels": "crops", "resolution_within": "crops",
    "Layer": "layers", "layer_uv_offset": "layers",
    "AtlasMaps": "model", "AtlasQuery": "model", "CompactAtlasMaps": "model", "LayeredAtlas": "model",
    "NeuralAtlas": "model",
    "IMLP": "networks", "encoding_frequencies": "networks", "positional_encoding": "networks",
    "AtlasCheckpointError": "nla_format", "save_nla_checkpoint": "nla_format",
    "reconstruction_psnr": "render", "sample_atlas": "render",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
