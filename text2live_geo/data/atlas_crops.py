"""The internal dataset of a video edit: the precomputed input (`AtlasVideo`) and the atlas crops
with their frame crops that each training step sees (`AtlasCropSampler`).

`text2live_geo.editing.video_input.prepare_atlas_video` builds the `AtlasVideo`;
`text2live_geo.editing.video.VideoEditor` draws one `AtlasSample` per step.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from atlas import AtlasMaps, CompactAtlasMaps, Layer, PixelBox, sample_atlas, uv_bounding_box

from ..augment import colour_jitter
from ..common.runs import RunError
from ..common.video_io import frames_as_float
from ..config import AtlasCropConfig, DirectFrameInput

__all__ = ["AtlasCropSampler", "AtlasSample", "AtlasVideo", "FrameCrop", "random_uniform"]


# --------------------------------------------------------------------- the input
@dataclass
class AtlasVideo:
    """Everything about the input that a video edit precomputes once, on the run's device.

    Attributes:
        frames: ``(N, 3, H, W)`` the input video at the atlas's frame size, uint8 (0..255): held for
            the whole run, so a quarter of float32's memory; :meth:`frame_images` gives float.
        maps: per-frame uv maps ``(N, H, W, 2)`` and NLA alpha ``(N, 1, H, W)`` of the edited layer,
            compact (:class:`atlas.CompactAtlasMaps`, what an edit holds: half of float32's memory)
            or float; ``maps.frames(indices)`` gives float32 maps of some frames.
        layer: the edited layer, "foreground" or "background".
        resolution: side R of the full baked atlas.
        frame_boxes: per frame, the region (frame pixels) training crops come from; None for a
            foreground frame without confident foreground (it is never sampled).
        atlas_box: the atlas-pixel region every frame box touches (the part worth editing).
        atlas_image: ``(1, 3, h, w)`` the baked atlas inside ``atlas_box``.
    """

    frames: torch.Tensor
    maps: AtlasMaps | CompactAtlasMaps
    layer: Layer
    resolution: int
    frame_boxes: list[PixelBox | None]
    atlas_box: PixelBox
    atlas_image: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def frames_with_box(self) -> list[int]:
        return [index for index, box in enumerate(self.frame_boxes) if box is not None]

    def frame_images(self, frames: slice | Sequence[int]) -> torch.Tensor:
        """The frames ``(B, 3, H, W)`` picked by ``frames`` (a slice or indices), float32 in [0, 1]."""
        return frames_as_float(self.frames[frames if isinstance(frames, slice) else list(frames)])


# ------------------------------------------------------------------ what one step sees
@dataclass
class FrameCrop:
    """One frame's training crop.

    Attributes:
        frame: frame index.
        box: the crop, in frame pixels.
        image: ``(1, 3, h, w)`` original video pixels (colour-jittered with the atlas crop).
        uv: ``(1, h, w, 2)`` the edited layer's uv at those pixels.
        nla_alpha: ``(1, 1, h, w)`` NLA alpha at those pixels.
    """

    frame: int
    box: PixelBox
    image: torch.Tensor
    uv: torch.Tensor
    nla_alpha: torch.Tensor


@dataclass
class AtlasSample:
    """What one training step sees (before flipping, which the renders apply).

    Attributes:
        frame_crops: crops of frames {t - gap, t, t + gap} that have a box (1 to 3).
        atlas_box: atlas pixels covering every frame crop's uv (at least the generator's minimum).
        atlas_crop: ``(1, 3, h, w)`` baked atlas inside ``atlas_box`` (colour-jittered).
        atlas_relevancy: ``(1, 1, h, w)`` bootstrap target inside ``atlas_box``, or None.
        direct_crop: the frame crop that also goes through the generator, or None.
        direct_input: ``(1, 3, h, w)`` what the generator sees for ``direct_crop`` with
            ``crops.direct_frame_input=layer``: the edited layer as NLA separates it, the frame
            times the NLA alpha (foreground) or the background reconstruction, i.e. the baked
            atlas sampled at the crop's uv (background), colour-jittered with the rest; None with
            ``frame`` (the generator sees ``direct_crop.image``) or without a direct crop.
        whole_atlas: True when the whole (cropped) atlas is one more sample this step.
        flipped: everything is flipped horizontally this step.
    """

    frame_crops: list[FrameCrop]
    atlas_box: PixelBox
    atlas_crop: torch.Tensor
    atlas_relevancy: torch.Tensor | None
    direct_crop: FrameCrop | None
    whole_atlas: bool
    flipped: bool
    direct_input: torch.Tensor | None = None


def _random_sub_box(box: PixelBox, fraction_min: float, min_size: int) -> PixelBox:
    """A random box covering ``fraction_min``..1 of each side of ``box``, at least ``min_size``."""
    def side(length: int) -> int:
        wanted = round(length * random_uniform(fraction_min, 1.0))
        return min(max(wanted, min_size), length)

    width, height = side(box.width), side(box.height)
    left = box.left + int(torch.randint(0, box.width - width + 1, ()))
    top = box.top + int(torch.randint(0, box.height - height + 1, ()))
    return PixelBox(left, top, left + width, top + height)


def random_uniform(low: float, high: float) -> float:
    """A uniform draw from torch's global RNG (so seeds and checkpoints cover it)."""
    return float(torch.empty(()).uniform_(low, high))


def _intersect(box: PixelBox, limit: PixelBox) -> PixelBox:
    return PixelBox(max(box.left, limit.left), max(box.top, limit.top),
                    min(box.right, limit.right), min(box.bottom, limit.bottom))


class AtlasCropSampler:
    """The internal dataset of a video edit (docs/video.md, "The video recipe", step 1).

    Each step: a centre frame t in [gap, N - 1 - gap] and frames {t - gap, t, t + gap} (gap 2,
    shrunk for videos under 5 frames); frames without a box (a foreground absent there) are
    skipped, and only centres with at least one usable frame are drawn. Each frame gets a random
    crop of ``crop_min``..1 of its box; the atlas crop is the bounding box, in atlas pixels, of
    the crops' uvs. With ``direct_frame`` one of the crops, at random, is also the direct frame
    crop (and its layer image, ``direct_frame_input``). Colour jitter (p ``jitter_p``) is drawn
    once and applied to the atlas crop and the frame crops alike; the flip (p ``flip_p``) is
    applied by the renders.
    """

    def __init__(self, video: AtlasVideo, cfg: AtlasCropConfig, min_size: int,
                 atlas_relevancy: torch.Tensor | None = None):
        self.video, self.cfg, self.min_size = video, cfg, min_size
        self.atlas_relevancy = atlas_relevancy
        self.gap, self.centres = self._centre_frames()

    def _usable_frames(self, centre: int, gap: int) -> list[int]:
        """Frames {centre - gap, centre, centre + gap} inside the video that have a box."""
        n, boxes = self.video.num_frames, self.video.frame_boxes
        return [f for f in dict.fromkeys((centre - gap, centre, centre + gap)) if 0 <= f < n and boxes[f] is not None]

    def _centre_frames(self) -> tuple[int, list[int]]:
        n = self.video.num_frames
        gap = max(0, min(self.cfg.frame_gap, (n - 1) // 2))
        centres = [t for t in range(gap, n - gap) if self._usable_frames(t, gap)]
        if not centres:  # e.g. a foreground present only in frame 1 of 5: no regular triplet holds it
            centres = [t for t in range(n) if self._usable_frames(t, gap)]
        if not centres:
            raise RunError("no frame has a region to edit")
        return gap, centres

    def sample(self, step: int) -> AtlasSample:
        video, cfg = self.video, self.cfg
        centre = self.centres[int(torch.randint(0, len(self.centres), ()))]
        frames = self._usable_frames(centre, self.gap)

        # a random crop of each frame's box, and the atlas pixels their uvs reach
        crops = []
        for frame in frames:
            box = _random_sub_box(video.frame_boxes[frame], cfg.crop_min, self.min_size)
            maps = video.maps.frames(slice(frame, frame + 1))
            crops.append(FrameCrop(frame=frame, box=box, image=frames_as_float(box.crop(video.frames[frame:frame + 1])),
                                   uv=maps.uv(video.layer)[:, box.top:box.bottom, box.left:box.right],
                                   nla_alpha=box.crop(maps.alpha)))
        reached = uv_bounding_box(torch.cat([crop.uv.reshape(-1, 2) for crop in crops]), video.layer,
                                  video.resolution)
        # in coordinates of the baked atlas crop: padded to the generator's minimum inside it
        whole = video.atlas_box
        relative = _intersect(reached, whole)
        relative = PixelBox(relative.left - whole.left, relative.top - whole.top,
                            relative.right - whole.left, relative.bottom - whole.top)
        relative = relative.padded_to(self.min_size, whole.width, whole.height)
        atlas_box = PixelBox(relative.left + whole.left, relative.top + whole.top,
                             relative.right + whole.left, relative.bottom + whole.top)
        atlas_crop = relative.crop(video.atlas_image)
        atlas_relevancy = relative.crop(self.atlas_relevancy) if self.atlas_relevancy is not None else None

        # the direct frame crop: one of the step's frames at random (as the reference), and the
        # layer it shows as NLA separates it
        direct, direct_input = None, None
        if cfg.direct_frame:
            direct = crops[int(torch.randint(0, len(crops), ()))]
            if cfg.direct_frame_input == DirectFrameInput.layer:
                if video.layer == Layer.foreground:
                    direct_input = direct.image * direct.nla_alpha
                else:
                    direct_input = sample_atlas(video.atlas_image[0], direct.uv, video.layer, video.resolution,
                                                video.atlas_box).clamp(0, 1)

        # colour jitter: one draw for the atlas crop and the frame crops (and the direct input)
        if torch.rand(()) < cfg.jitter_p:
            factors = torch.empty(4).uniform_(-1, 1) * cfg.jitter
            atlas_crop = colour_jitter(atlas_crop, factors)
            for crop in crops:
                crop.image = colour_jitter(crop.image, factors)
            if direct_input is not None:
                direct_input = colour_jitter(direct_input, factors)
        flipped = bool(torch.rand(()) < cfg.flip_p)
        whole_atlas = cfg.full_atlas_every > 0 and step % cfg.full_atlas_every == 0
        return AtlasSample(frame_crops=crops, atlas_box=atlas_box, atlas_crop=atlas_crop,
                           atlas_relevancy=atlas_relevancy, direct_crop=direct, whole_atlas=whole_atlas,
                           flipped=flipped, direct_input=direct_input)
