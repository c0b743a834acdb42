"""Neural layered atlases (NLA, Kasten et al. 2021): networks, the public checkpoint format,
per-pixel queries, baking atlases to images, rendering frames back, and edit-region crops.

Conventions are described in ``docs/atlas.md``; see :mod:`atlas.model` (coordinates) and
:mod:`atlas.coordinates` (atlas pixels and ``grid_sample`` grids).
"""

# The modules, lowest first; each imports only modules listed before it (tests/test_atlas_package.py):
#   layers (Layer, uv offsets), chunking (pixel chunks, progress), config (config.json sizes),
#   networks (IMLP) -> coordinates (atlas pixels, PixelBox) -> nla_format (the public checkpoint)
#   -> model (NeuralAtlas, AtlasMaps) -> crops (regions worth editing), render (sample, render, PSNR)
#   -> testing (tiny atlases).
from .config import ATLAS_SKIP_LAYERS, AtlasConfig
from .coordinates import PixelBox, atlas_pixels_to_grid, uv_bounding_box, uv_to_atlas_pixels, uv_to_grid
from .crops import (
    LayerCropRegions,
    NoForegroundError,
    atlas_region,
    foreground_frame_boxes,
    layer_crop_regions,
    suggested_resolution,
)
from .layers import Layer, layer_uv_offset
from .model import AtlasMaps, AtlasQuery, LayeredAtlas, NeuralAtlas
from .networks import IMLP, encoding_frequencies, positional_encoding
from .nla_format import AtlasCheckpointError, save_nla_checkpoint
from .render import bake_atlas, reconstruction_psnr, render_frames, sample_atlas

__all__ = [
    "ATLAS_SKIP_LAYERS",
    "AtlasCheckpointError",
    "AtlasConfig",
    "AtlasMaps",
    "AtlasQuery",
    "IMLP",
    "LayeredAtlas",
    "Layer",
    "LayerCropRegions",
    "NeuralAtlas",
    "NoForegroundError",
    "PixelBox",
    "atlas_pixels_to_grid",
    "atlas_region",
    "bake_atlas",
    "encoding_frequencies",
    "foreground_frame_boxes",
    "layer_crop_regions",
    "layer_uv_offset",
    "positional_encoding",
    "reconstruction_psnr",
    "render_frames",
    "sample_atlas",
    "suggested_resolution",
    "save_nla_checkpoint",
    "uv_bounding_box",
    "uv_to_atlas_pixels",
    "uv_to_grid",
]
