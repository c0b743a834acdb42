"""Training loops: image (generator or CLIP inversion) and video (atlas)."""
from .image import ImageEditor, ImageEditResult, edit_image
from .run import RunError

__all__ = ["ImageEditor", "ImageEditResult", "edit_image", "RunError"]
