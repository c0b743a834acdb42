"""The two layers of an atlas and where each layer's uv square lies (the lowest atlas module)."""

from __future__ import annotations

from text2live_geo.common.config import Choice

__all__ = ["Layer", "layer_uv_offset"]

class Layer(Choice):
    """The two layers of an atlas (a plain string compares equal to its member)."""

    foreground = "foreground"
    background = "background"


def layer_uv_offset(layer: Layer) -> float:
    """Offset s of a layer's uv square: 0 for the foreground ((0, 1)^2), -1 for the background.

    Args:
        layer: "foreground" or "background".

    Returns:
        s, so that a layer's uv lies in (s, s + 1)^2 and its atlas pixel coordinates are
        ``(uv - s) * R``.
    """
    if layer == Layer.foreground:
        return 0.0
    if layer == Layer.background:
        return -1.0
    raise ValueError(f"layer must be 'foreground' or 'background', got {layer!r}")
