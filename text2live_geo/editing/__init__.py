"""Training loops: image (generator or CLIP inversion) and video (atlas)."""
from .image import ImageEditor, ImageEditResult, edit_image
from .run import RunError
from .video import VideoEditor, VideoEditResult, edit_video

__all__ = ["ImageEditor", "ImageEditResult", "edit_image", "VideoEditor", "VideoEditResult", "edit_video", "RunError"]
