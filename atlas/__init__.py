"""Neural layered atlases (NLA, Kasten et al. 2021): networks, the public checkpoint format,
per-pixel queries, baking atlases to images, rendering frames back, and edit-region crops.

Conventions are described in ``docs/atlas.md``; see :mod:`atlas.model` (coordinates) and
:mod:`atlas.coordinates` (atlas pixels and ``grid_sample`` grids).
"""

from .config import ATLAS_SKIP_LAYERS, AtlasConfig
from .coordinates import PixelBox, atlas_pixels_to_grid, uv_bounding_box, uv_to_atlas_pixels, uv_to_grid
from .crops import LayerCropRegions, NoForegroundError, atlas_region, foreground_frame_boxes, layer_crop_regions
from .model import (
    AtlasCheckpointError,
    AtlasMaps,
    AtlasQuery,
    Layer,
    NeuralAtlas,
    layer_uv_offset,
    save_nla_checkpoint,
)
from .networks import IMLP, encoding_frequencies, positional_encoding
from .render import bake_atlas, reconstruction_psnr, render_frames, sample_atlas

__all__ = [
    "ATLAS_SKIP_LAYERS",
    "AtlasCheckpointError",
    "AtlasConfig",
    "AtlasMaps",
    "AtlasQuery",
    "IMLP",
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
    "save_nla_checkpoint",
    "uv_bounding_box",
    "uv_to_atlas_pixels",
    "uv_to_grid",
]
