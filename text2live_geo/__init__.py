"""text2live_geo: text-driven layered image and video editing with geodesic CLIP guidance.

`edit_image` and `edit_video` are loaded on first use, so importing a light subpackage
(`text2live_geo.losses`, `text2live_geo.common.errors`) does not pull in the editors, the atlas
package or the command line.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .editing import edit_image, edit_video

__version__ = "0.1.0"
__all__ = ["edit_image", "edit_video", "__version__"]


def __getattr__(name: str):
    if name == "edit_image":
        from .editing import edit_image as value
    elif name == "edit_video":
        from .editing import edit_video as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value
