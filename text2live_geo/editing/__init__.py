"""Training loops: image (generator or CLIP inversion) and video (atlas)."""
from ..common.runs import RunError
from .image import ImageEditor, ImageEditResult, edit_image
from .video import VideoEditor, VideoEditResult, edit_video

__all__ = ["ImageEditor", "ImageEditResult", "edit_image", "VideoEditor", "VideoEditResult", "edit_video", "RunError"]
