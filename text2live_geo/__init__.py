"""text2live_geo: text-driven layered image and video editing with geodesic CLIP guidance.

`edit_image` and `edit_video` are loaded on first use, so importing a light subpackage
(`text2live_geo.losses`, `text2live_geo.common`) does not pull in the editors, the atlas
package or the command line.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .common.lazy import lazy_exports

if TYPE_CHECKING:
    from .editing import edit_image, edit_video

__version__ = "0.1.0"
__all__ = ["edit_image", "edit_video", "__version__"]

__getattr__ = lazy_exports(__name__, {"edit_image": "editing", "edit_video": "editing"})
