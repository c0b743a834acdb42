"""text2live_geo: text-driven layered image and video editing with geodesic CLIP guidance."""
from .editing.image import edit_image
from .editing.video import edit_video

__version__ = "0.1.0"
__all__ = ["edit_image", "edit_video", "__version__"]
