"""text2live_geo: text-driven layered image and video editing with geodesic CLIP guidance."""
from .editing.image import edit_image

__version__ = "0.1.0"
__all__ = ["edit_image", "__version__"]
