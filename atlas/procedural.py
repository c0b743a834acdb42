"""Procedural clips with ground truth, for tests and benchmarks of atlas fitting (no downloads).

A clip shows 0-2 textured objects moving, turning and scaling over a textured background seen by
a camera that stays still, pans, zooms or both. Every transform is known in closed form, so the
clip comes with exact foreground masks and the exact forward optical flow.

Geometry (pixel centres at integer coordinates, x right, y down, as everywhere in ``atlas/``):

- the camera maps a frame pixel ``p`` to a background-texture pixel ``w = C_t p`` with
  ``C_t = T(c_t) S(z_t) T(-frame centre)``: ``c_t`` pans, ``z_t`` (texture pixels per frame pixel)
  zooms (below 1: zooming in);
- object ``k`` maps its local coordinates ``l`` (about ``[-1, 1]^2``) to frame pixels with the
  similarity ``p = A_kt l = T(position) R(angle) S(radius) l``, its radius following the camera's
  zoom and breathing by a few tens of percent; object ``k + 1`` is drawn over object ``k``;
- the forward flow at ``p`` in frame ``t`` is ``C_{t+1}^-1 C_t p - p`` on the background and
  ``A_k(t+1) A_kt^-1 p - p`` where object ``k`` is on top.

Textures are smooth multi-octave noise with stripes, a checker and colour blobs, band-limited
(no detail finer than about 3 pixels) so that bilinear warping by the true flow reproduces the
next frame closely and optical flow has texture to lock on to everywhere.

Colours are exact samples of the textures (bilinear), object edges are hard (no anti-aliasing), so
``masks`` is exactly where object colour is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from text2live_geo.common.video_io import FrameShape

__all__ = ["CAMERA_MOTIONS", "ProceduralClip", "make_procedural_clip", "write_procedural_clip"]

#: Camera motions :func:`make_procedural_clip` knows.
CAMERA_MOTIONS = ("static", "pan", "zoom", "pan+zoom")

# local object coordinates covered by an object's texture image: [-_OBJECT_EXTENT, _OBJECT_EXTENT]^2
_OBJECT_EXTENT = 1.6


@dataclass
class ProceduralClip(FrameShape):
    """A procedural clip and its ground truth (CPU tensors).

    Attributes:
        frames: ``(N, 3, H, W)`` float32 in [0, 1].
        masks: ``(N, 1, H, W)`` bool, True where an object is drawn (the foreground).
        labels: ``(N, H, W)`` int64: 0 background, ``k + 1`` where object ``k`` is on top.
        flow: ``(N - 1, H, W, 2)`` float32, forward flow from frame t to t + 1, (dx, dy) in pixels.
        flow_visible: ``(N - 1, H, W)`` bool, True where the point a pixel shows lands inside
            frame t + 1 and is not hidden there (by an object or, for an object point, by another
            object or the background): where warping frame t + 1 back by ``flow`` must reproduce
            frame t.
        camera: the camera motion ("static", "pan", "zoom", "pan+zoom").
        seed: the seed it was made from.
    """

    frames: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    flow: torch.Tensor
    flow_visible: torch.Tensor
    camera: str
    seed: int


# ---------------------------------------------------------------------------------------------
# transforms (3 x 3 homogeneous, acting on column vectors (x, y, 1))


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


def _scale(s: float) -> np.ndarray:
    return np.diag([s, s, 1.0])


def _rotate(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _apply(matrix: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply an affine 3 x 3 matrix to coordinate arrays."""
    return (matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2],
            matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2])


# ---------------------------------------------------------------------------------------------
# textures


def _smooth_noise(rng: np.random.Generator, height: int, width: int, channels: int,
                  cells: tuple[float, ...], amplitudes: tuple[float, ...]) -> np.ndarray:
    """Multi-octave value noise, ``(height, width, channels)``, roughly zero-mean."""
    out = np.zeros((height, width, channels), np.float32)
    for cell, amplitude in zip(cells, amplitudes):
        step = max(1, int(round(cell)))
        rows, cols = -(-height // step) + 3, -(-width // step) + 3
        grid = rng.standard_normal((rows, cols, channels)).astype(np.float32)
        big = cv2.resize(grid, (cols * step, rows * step), interpolation=cv2.INTER_CUBIC)
        big = big.reshape(rows * step, cols * step, channels)
        out += amplitude * big[step:step + height, step:step + width]
    return out


def _texture(rng: np.random.Generator, height: int, width: int, detail: float, saturation: float) -> np.ndarray:
    """A rich, band-limited colour texture ``(height, width, 3)`` float32 in [0, 1].

    ``detail`` is the size in texture pixels of the finest structures (stripe period / 2, checker
    cell, finest noise cell / 2); ``saturation`` scales the colour variation.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0.3, 0.7, 3).astype(np.float32)
    noise = _smooth_noise(rng, height, width, 3, (8 * detail, 4 * detail, 2 * detail),
                          (0.16, 0.10, 0.07))
    image = base + saturation * noise
    # regions where stripes / a checker show (smooth on/off masks)
    regions = _smooth_noise(rng, height, width, 2, (10 * detail,), (1.0,))
    stripes_on = np.clip(regions[..., 0] * 2.0, 0, 1)[..., None]
    checker_on = np.clip(-regions[..., 1] * 2.0, 0, 1)[..., None]
    angle = rng.uniform(0, math.pi)
    period = 2.0 * detail * rng.uniform(1.5, 2.2)
    stripes = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)[..., None]
    stripe_colour = rng.uniform(-0.25, 0.25, 3).astype(np.float32) * saturation + 0.12
    image = image + stripes_on * stripes * stripe_colour
    cell = detail * rng.uniform(1.8, 2.5)
    angle = rng.uniform(0, math.pi / 2)
    u = (xx * math.cos(angle) + yy * math.sin(angle)) / cell
    v = (-xx * math.sin(angle) + yy * math.cos(angle)) / cell
    checker = (np.sin(math.pi * u) * np.sin(math.pi * v))
    checker = np.tanh(3.0 * checker)[..., None]  # soft-edged squares: band-limited
    checker_colour = rng.uniform(-0.25, 0.25, 3).astype(np.float32) * saturation + 0.12
    image = image + checker_on * checker * checker_colour
    # colour blobs
    count = max(3, int(height * width / (40 * detail) ** 2))
    for _ in range(count):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma = detail * rng.uniform(2.0, 6.0)
        colour = rng.uniform(-0.35, 0.35, 3).astype(np.float32) * saturation
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2))[..., None]
        image = image + blob * colour
    return np.clip(image, 0.02, 0.98).astype(np.float32)


def _object_inside(lx: np.ndarray, ly: np.ndarray, shape: tuple[float, ...]) -> np.ndarray:
    """Inside test of a wobbly ellipse in local coordinates (radius about 1)."""
    aspect, a3, p3, a5, p5 = shape
    x, y = lx, ly / aspect
    rho = np.hypot(x, y)
    phi = np.arctan2(y, x)
    return rho <= 1.0 + a3 * np.cos(3 * phi + p3) + a5 * np.cos(5 * phi + p5)


# ---------------------------------------------------------------------------------------------
# the clip


@dataclass
class _Object:
    texture: np.ndarray  # (S, S, 3) over local [-_OBJECT_EXTENT, _OBJECT_EXTENT]^2
    shape: tuple[float, ...]
    start: np.ndarray
    end: np.ndarray
    wiggle: np.ndarray  # amplitude (x, y) of a sideways wobble, pixels
    wiggle_phase: float
    radius: float
    angle0: float
    turn: float
    breathe: float
    breathe_phase: float

    def matrix(self, s: float, zoom: float) -> np.ndarray:
        """Local -> frame pixels at clip time s in [0, 1]; ``zoom`` = camera magnification."""
        # eased travel that never stops (the speed stays within 0.6-1.4 x its mean)
        progress = 0.6 * s + 0.4 * (0.5 - 0.5 * math.cos(math.pi * s))
        position = self.start + (self.end - self.start) * progress
        position = position + self.wiggle * math.sin(2 * math.pi * s + self.wiggle_phase)
        radius = self.radius * zoom * (1.0 + self.breathe * math.sin(2 * math.pi * s + self.breathe_phase))
        return _translate(*position) @ _rotate(self.angle0 + self.turn * s) @ _scale(radius)


def make_procedural_clip(
    frames: int = 16,
    width: int = 128,
    height: int = 72,
    objects: int = 1,
    camera: str = "pan",
    seed: int = 0,
    motion: float = 1.0,
    object_size: float = 1.0,
) -> ProceduralClip:
    """Make a procedural clip with exact masks and forward flow (deterministic from ``seed``).

    Args:
        frames: number of frames N (>= 2).
        width, height: frame size in pixels.
        objects: number of moving objects, 0, 1 or 2 (0: background only).
        camera: "static", "pan", "zoom" or "pan+zoom".
        seed: random seed; the same arguments give the same clip, bit for bit.
        motion: scales every motion (pan distance, zoom, object travel, turning).
        object_size: scales the objects' radius (1: about 0.2 of the frame height, each object
            covering about 5% of a 16:9 frame).

    Motions are set relative to the frame size over the whole clip: a pan covers about 0.3 of the
    frame width, a zoom changes the magnification by about 20%, an object crosses about 0.4 of
    the frame and turns by 40-90 degrees, its radius is about 0.2 of the frame height.
    """
    if camera not in CAMERA_MOTIONS:
        raise ValueError(f"camera must be one of {', '.join(CAMERA_MOTIONS)}, got '{camera}'")
    if frames < 2:
        raise ValueError(f"a clip needs at least 2 frames, got {frames}")
    if not 0 <= objects <= 2:
        raise ValueError(f"objects must be 0, 1 or 2, got {objects}")
    if not 0.2 <= object_size <= 2.5:
        raise ValueError(f"object_size must be in [0.2, 2.5], got {object_size}")
    if width < 16 or height < 16:
        raise ValueError(f"frames must be at least 16 x 16 pixels, got {width} x {height}")
    rng = np.random.default_rng(seed)
    n, w, h = int(frames), int(width), int(height)
    times = np.linspace(0.0, 1.0, n)
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])

    # camera: texture pixels per frame pixel (zoom) and the texture point seen at the frame centre
    pans = camera in ("pan", "pan+zoom")
    zooms = camera in ("zoom", "pan+zoom")
    direction = rng.uniform(-0.5, 0.5) + (math.pi if rng.random() < 0.5 else 0.0)  # mostly sideways
    pan = (0.3 * w * motion) * np.array([math.cos(direction), math.sin(direction)]) if pans else np.zeros(2)
    zoom_end = (1.0 - 0.2 * motion) if rng.random() < 0.5 else 1.0 / (1.0 - 0.2 * motion)
    zoom_end = zoom_end if zooms else 1.0
    zoom_of = [zoom_end ** s for s in times]  # texture pixels per frame pixel
    camera_matrices = [_translate(*(pan * s)) @ _scale(z) @ _translate(*(-centre)) for s, z in zip(times, zoom_of)]
    # background texture covering every view, with a margin
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64).T
    seen = np.concatenate([np.stack(_apply(m, corners[0], corners[1])) for m in camera_matrices], axis=1)
    low = np.floor(seen.min(axis=1)) - 8
    high = np.ceil(seen.max(axis=1)) + 8
    detail = max(1.5, min(w, h) / 48.0)  # finest structure, frame pixels: about 3 px at 144 rows
    background_seed = int(rng.integers(2 ** 63))
    background = _texture(np.random.default_rng(background_seed), int(high[1] - low[1]) + 1,
                          int(high[0] - low[0]) + 1, detail, saturation=0.8)
    to_texture = _translate(-low[0], -low[1])

    # objects: every random number is drawn here, textures from their own generators, so that
    # object_size and the frame size change sizes only, not the layout or the motion
    bodies: list[_Object] = []
    for _ in range(objects):
        radius = rng.uniform(0.17, 0.22) * h * object_size
        start_draw = rng.uniform(0.0, 1.0, 2)
        travel_angle = rng.uniform(0, 2 * math.pi)
        shape = (rng.uniform(0.65, 0.9), rng.uniform(0.05, 0.15), rng.uniform(0, 2 * math.pi),
                 rng.uniform(0.0, 0.06), rng.uniform(0, 2 * math.pi))
        wiggle, wiggle_phase = rng.uniform(-0.05, 0.05, 2) * h * motion, rng.uniform(0, 2 * math.pi)
        angle0 = rng.uniform(0, 2 * math.pi)
        turn = math.radians(rng.uniform(40, 90)) * motion * (1 if rng.random() < 0.5 else -1)
        breathe_phase = rng.uniform(0, 2 * math.pi)
        texture_seed = int(rng.integers(2 ** 63))

        margin = np.array([radius * 1.3, radius * 1.3])
        room = np.maximum(np.array([w, h]) - 2 * margin, 0.0)
        start = margin + start_draw * room
        travel = 0.4 * w * motion * np.array([math.cos(travel_angle), 0.5 * math.sin(travel_angle)])
        end = np.clip(start + travel, margin, margin + room)
        if np.linalg.norm(end - start) < 0.2 * w * motion:  # bounced off the border: go the other way
            end = np.clip(start - travel, margin, margin + room)
        size = int(math.ceil(2 * _OBJECT_EXTENT * radius * 1.3 / max(min(zoom_of), 1e-3) * 1.3)) + 1
        size = max(size, 16)
        texture = _texture(np.random.default_rng(texture_seed), size, size,
                           detail * size / (2 * _OBJECT_EXTENT * radius), saturation=1.6)
        bodies.append(_Object(
            texture=texture, shape=shape, start=start, end=end, wiggle=wiggle, wiggle_phase=wiggle_phase,
            radius=radius, angle0=angle0, turn=turn, breathe=0.15 * motion, breathe_phase=breathe_phase))
    object_matrices = [[body.matrix(s, 1.0 / z) for s, z in zip(times, zoom_of)] for body in bodies]

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    images = np.empty((n, h, w, 3), np.float32)
    labels = np.zeros((n, h, w), np.int64)
    for t in range(n):
        tx, ty = _apply(to_texture @ camera_matrices[t], xx, yy)
        image = cv2.remap(background, tx.astype(np.float32), ty.astype(np.float32), cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
        for k, body in enumerate(bodies):
            lx, ly = _apply(np.linalg.inv(object_matrices[k][t]), xx, yy)
            inside = _object_inside(lx, ly, body.shape)
            size = body.texture.shape[0]
            ux = ((lx + _OBJECT_EXTENT) / (2 * _OBJECT_EXTENT) * (size - 1)).astype(np.float32)
            uy = ((ly + _OBJECT_EXTENT) / (2 * _OBJECT_EXTENT) * (size - 1)).astype(np.float32)
            colour = cv2.remap(body.texture, ux, uy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            image[inside] = colour[inside]
            labels[t][inside] = k + 1
        images[t] = image

    flow = np.empty((n - 1, h, w, 2), np.float32)
    visible = np.empty((n - 1, h, w), bool)
    for t in range(n - 1):
        bx, by = _apply(np.linalg.inv(camera_matrices[t + 1]) @ camera_matrices[t], xx, yy)
        nx, ny = bx, by
        for k in range(len(bodies)):
            ox, oy = _apply(object_matrices[k][t + 1] @ np.linalg.inv(object_matrices[k][t]), xx, yy)
            on = labels[t] == k + 1
            nx, ny = np.where(on, ox, nx), np.where(on, oy, ny)
        flow[t, ..., 0] = nx - xx
        flow[t, ..., 1] = ny - yy
        inside = (nx >= 0) & (nx <= w - 1) & (ny >= 0) & (ny <= h - 1)
        rx = np.clip(np.rint(nx), 0, w - 1).astype(np.int64)
        ry = np.clip(np.rint(ny), 0, h - 1).astype(np.int64)
        visible[t] = inside & (labels[t + 1][ry, rx] == labels[t])

    return ProceduralClip(
        frames=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        masks=torch.from_numpy(labels > 0)[:, None],
        labels=torch.from_numpy(labels),
        flow=torch.from_numpy(flow),
        flow_visible=torch.from_numpy(visible),
        camera=camera,
        seed=int(seed),
    )


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` float in [0, 1] -> ``(N, H, W, C)`` uint8."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_procedural_clip(
    clip: ProceduralClip,
    folder: str | Path,
    fps: float = 10.0,
    mp4: bool = True,
    frames_png: bool = True,
    masks_png: bool = True,
    flow: bool = False,
) -> Path:
    """Write a clip into ``folder``; returns the folder.

    Writes, as asked: ``clip.mp4`` (H.264), ``frames/00000.png ...`` (RGB), ``masks/00000.png ...``
    (grayscale, 255 foreground, 0 background; same names as the frames, so the folder loads with
    :func:`atlas.masks.load_mask_folder`) and ``flow.npz`` (``flow`` float16 and ``visible``).
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i:05d}.png" for i in range(clip.num_frames)]
    if mp4:
        # the project's mp4 writer (H.264 at the exact size via imageio-ffmpeg); imported here so
        # that atlas/ does not need the editing package to make clips in memory
        from text2live_geo.common.video_io import write_video

        write_video(folder / "clip.mp4", clip.frames, fps=fps)
    if frames_png:
        (folder / "frames").mkdir(exist_ok=True)
        for name, image in zip(names, _to_uint8(clip.frames)):
            Image.fromarray(image).save(folder / "frames" / name, optimize=True)
    if masks_png:
        (folder / "masks").mkdir(exist_ok=True)
        for name, mask in zip(names, clip.masks[:, 0].numpy()):
            Image.fromarray((mask * 255).astype(np.uint8), mode="L").save(folder / "masks" / name, optimize=True)
    if flow:
        np.savez_compressed(folder / "flow.npz", flow=clip.flow.numpy().astype(np.float16),
                            visible=clip.flow_visible.numpy())
    return folder
