"""A procedural world of coloured, textured shapes with exact masks and captions.

Everything is drawn with numpy on a pixel grid (pixel centres at (j + 0.5) / size), so a
scene is a pure function of its `SceneSpec` and the render size, and `sample_scene(seed)` is
deterministic per seed. Masks are the exact sets of pixels each object covers in the image
(hard edges, no anti-aliasing), so colour measurements inside them are measurements of what
was drawn.

Public API:
    COLOURS, BACKGROUND_COLOURS, SHAPES, TEXTURES, BACKGROUND_STYLES, VOCABULARY,
    SINGLE_OBJECT_SIZES, PAIR_OBJECT_SIZES, known_words()
    ObjectSpec, BackgroundSpec, SceneSpec, Scene
    sample_spec(rng_or_seed, n_objects=None) -> SceneSpec
    sample_scene(rng_or_seed, size=64, n_objects=None) -> Scene
    render_scene(spec, size=64) -> Scene
    caption_for(spec) -> str, object_phrase(obj) -> str
    classify_colour(pixels, candidates=None) -> str
    classify_texture(image, mask) -> str
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

# --------------------------------------------------------------------------------------
# Vocabulary of the world
# --------------------------------------------------------------------------------------

#: Object colours: fixed RGB prototypes in [0, 1]; each object gets a small jitter around its.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "orange": (0.98, 0.55, 0.08),
    "yellow": (0.96, 0.90, 0.12),
    "green": (0.15, 0.68, 0.20),
    "cyan": (0.10, 0.80, 0.86),
    "blue": (0.12, 0.25, 0.88),
    "purple": (0.55, 0.18, 0.75),
    "pink": (0.98, 0.52, 0.76),
    "brown": (0.50, 0.30, 0.12),
    "white": (0.97, 0.97, 0.97),
    "black": (0.06, 0.06, 0.06),
}

GREEN_SCREEN = "green screen"
#: Background colours (named in captions: "... on a gray background", "... over a green screen").
BACKGROUND_COLOURS: dict[str, tuple[float, float, float]] = {
    "gray": (0.55, 0.55, 0.55),
    "white": (0.97, 0.97, 0.97),
    "black": (0.06, 0.06, 0.06),
    "beige": (0.90, 0.84, 0.68),
    "brown": (0.50, 0.30, 0.12),
    GREEN_SCREEN: (0.0, 177 / 255, 64 / 255),  # Text2LIVE's green screen colour
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "heart")
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted", "checkered")
BACKGROUND_STYLES: tuple[str, ...] = ("flat", "gradient", "noise", "stripes")

#: Object sizes (fraction of the image side) in single-object and in two-object scenes.
SINGLE_OBJECT_SIZES: tuple[float, float] = (0.2, 0.34)
PAIR_OBJECT_SIZES: tuple[float, float] = (0.13, 0.22)
#: An object colour is never drawn on a background colour closer than this (RGB distance).
MIN_BACKGROUND_DISTANCE = 0.35
#: Per-channel half-range of the uniform colour jitter of an object.
COLOUR_JITTER = 0.04

#: Text2LIVE's generic text templates (the editor embeds prompts under these).
TEXT_TEMPLATES: tuple[str, ...] = (
    "photo of {}.", "high quality photo of {}.", "a photo of {}.", "the photo of {}.",
    "image of {}.", "an image of {}.", "high quality image of {}.", "a high quality image of {}.",
    "the {}.", "a {}.", "{}.", "{}", "{}!", "{}...",
)
#: Text2LIVE's green-screen templates (for the edit layer rendered over the green screen).
SCREEN_TEMPLATES: tuple[str, ...] = ("{} over a green screen.", "{} in front of a green screen.")

_FUNCTION_WORDS = (
    "a", "an", "and", "on", "of", "the", "in", "over", "front", "background", "screen",
    "photo", "image", "high", "quality", "object", "shape", "picture",
)


def _vocabulary() -> tuple[str, ...]:
    words: set[str] = set(_FUNCTION_WORDS)
    words.update(COLOURS)
    for name in BACKGROUND_COLOURS:
        words.update(name.split())
    words.update(SHAPES)
    words.update(TEXTURES)
    return tuple(sorted(words))


#: Every word the captions and templates use (each is a single token of the toy tokenizer).
VOCABULARY: tuple[str, ...] = _vocabulary()


def known_words() -> dict[str, list[str]]:
    """`VOCABULARY` grouped for people: shapes, colours (object and background colours),
    textures, and the other words of the captions and templates."""
    colours = list(COLOURS) + [w for name in BACKGROUND_COLOURS for w in name.split()
                               if w not in COLOURS and w not in _FUNCTION_WORDS]
    return {"shapes": list(SHAPES), "colours": colours, "textures": list(TEXTURES),
            "other words": sorted(_FUNCTION_WORDS)}


# --------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectSpec:
    """One object. Geometry is in image fractions: centre (cx, cy), `size` = radius of the
    object's bounding circle as a fraction of the image side, `angle` in radians.
    `jitter` is the RGB offset added to the colour prototype (kept when the colour changes).
    Texture parameters are in object units (1 = `size`)."""

    shape: str
    colour: str
    texture: str = "plain"
    cx: float = 0.5
    cy: float = 0.5
    size: float = 0.3
    angle: float = 0.0
    jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)
    texture_period: float = 0.5
    texture_angle: float = 0.0
    texture_phase: float = 0.0

    @property
    def rgb(self) -> np.ndarray:
        return np.clip(np.asarray(COLOURS[self.colour]) + np.asarray(self.jitter), 0.0, 1.0)


@dataclass(frozen=True)
class BackgroundSpec:
    """The background: named colour + style (flat, gradient, noise, stripes)."""

    colour: str = "gray"
    style: str = "flat"
    angle: float = 0.0  # gradient / stripes direction (radians)
    period: float = 0.1  # stripes period (image fraction)
    strength: float = 0.2  # gradient / noise / stripes amplitude
    noise_seed: int = 0
    jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def rgb(self) -> np.ndarray:
        return np.clip(np.asarray(BACKGROUND_COLOURS[self.colour]) + np.asarray(self.jitter), 0.0, 1.0)


@dataclass(frozen=True)
class SceneSpec:
    objects: tuple[ObjectSpec, ...]
    background: BackgroundSpec = field(default_factory=BackgroundSpec)

    def with_object(self, index: int = 0, **changes) -> SceneSpec:
        """A copy with attributes of object `index` changed, e.g. `with_object(0, colour="blue")`."""
        objects = list(self.objects)
        objects[index] = replace(objects[index], **changes)
        return replace(self, objects=tuple(objects))

    def with_background(self, **changes) -> SceneSpec:
        return replace(self, background=replace(self.background, **changes))


@dataclass
class Scene:
    """A rendered scene: image (3, H, W) float32 in [0, 1], masks (K, H, W) bool (the pixels
    of each object visible in the image), caption, and the spec it was rendered from."""

    image: torch.Tensor
    masks: torch.Tensor
    caption: str
    spec: SceneSpec

    @property
    def objects(self) -> tuple[ObjectSpec, ...]:
        return self.spec.objects

    @property
    def background(self) -> BackgroundSpec:
        return self.spec.background


# --------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------


def article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeiou" else "a"


def object_phrase(obj: ObjectSpec | None = None, *, colour: str | None = None,
                  texture: str | None = None, shape: str | None = None) -> str:
    """"red striped circle" (plain texture is not named: "red circle")."""
    if obj is not None:
        colour, texture, shape = obj.colour, obj.texture, obj.shape
    words = [colour] if colour else []
    if texture and texture != "plain":
        words.append(texture)
    words.append(shape if shape else "object")
    return " ".join(words)


def background_phrase(colour: str) -> str:
    return "over a green screen" if colour == GREEN_SCREEN else f"on {article(colour)} {colour} background"


def caption_for(spec: SceneSpec) -> str:
    """"a red striped circle on a gray background", "a red circle and a blue square on ..."."""
    parts = []
    for obj in spec.objects:
        phrase = object_phrase(obj)
        parts.append(f"{article(phrase)} {phrase}")
    return " and ".join(parts) + " " + background_phrase(spec.background.colour)


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    return np.meshgrid(c, c, indexing="xy")  # x, y with y pointing down


def _polygon_inside(u: np.ndarray, v: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over points."""
    inside = np.zeros(u.shape, dtype=bool)
    n = len(verts)
    for i in range(n):
        x1, y1 = verts[i]
        x2, y2 = verts[(i + 1) % n]
        crosses = (y1 > v) != (y2 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x1 + (v - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (u < xint)
    return inside


def _regular(n: int, radius: float, start: float = -np.pi / 2) -> np.ndarray:
    a = start + 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)


def _star_vertices() -> np.ndarray:
    outer = _regular(5, 1.0)
    inner = _regular(5, 0.45, -np.pi / 2 + np.pi / 5)
    return np.stack([outer, inner], 1).reshape(10, 2)


_CROSS = np.array([[-0.3, -0.95], [0.3, -0.95], [0.3, -0.3], [0.95, -0.3], [0.95, 0.3], [0.3, 0.3],
                   [0.3, 0.95], [-0.3, 0.95], [-0.3, 0.3], [-0.95, 0.3], [-0.95, -0.3], [-0.3, -0.3]])


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in object units (the shape fits in the unit disc; v points down)."""
    if shape == "circle":
        return u * u + v * v <= 0.88 ** 2
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.7
    if shape == "triangle":
        return _polygon_inside(u, v + 0.12, _regular(3, 1.05))
    if shape == "star":
        return _polygon_inside(u, v, _star_vertices())
    if shape == "cross":
        return _polygon_inside(u, v, _CROSS)
    if shape == "heart":
        x = u / 0.78
        y = -(v + 0.08) / 0.78  # y up
        return (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def texture_shade(rgb: np.ndarray) -> np.ndarray:
    """The secondary colour of a textured object: a darker shade (a lighter one for black)."""
    if rgb.max() < 0.25:
        return np.clip(rgb + 0.3, 0, 1)
    return rgb * 0.45


def texture_pattern(obj: ObjectSpec, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """True where the secondary shade is drawn (object units)."""
    if obj.texture == "plain":
        return np.zeros(u.shape, dtype=bool)
    p = obj.texture_period
    if obj.texture == "striped":
        t = np.cos(obj.texture_angle) * u + np.sin(obj.texture_angle) * v
        return np.mod(t / p + obj.texture_phase, 1.0) < 0.4
    if obj.texture == "dotted":
        a = np.mod(u / p + obj.texture_phase, 1.0) - 0.5
        b = np.mod(v / p + obj.texture_phase, 1.0) - 0.5
        return a * a + b * b <= 0.27 ** 2
    if obj.texture == "checkered":
        a = np.floor(u / p + obj.texture_phase)
        b = np.floor(v / p + obj.texture_phase)
        return np.mod(a + b, 2) == 1
    raise ValueError(f"unknown texture {obj.texture!r}; known: {TEXTURES}")


def _smooth_noise(seed: int, size: int, cells: int = 6) -> np.ndarray:
    grid = np.random.default_rng(seed).standard_normal((1, 1, cells, cells)).astype(np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(grid), size=(size, size), mode="bicubic",
                                         align_corners=False)
    return up[0, 0].numpy().astype(np.float64)


def render_background(bg: BackgroundSpec, size: int) -> np.ndarray:
    x, y = _grid(size)
    rgb = bg.rgb
    img = np.broadcast_to(rgb[:, None, None], (3, size, size)).astype(np.float64).copy()
    dark = rgb.max() < 0.25
    if bg.style == "flat":
        return img
    t = np.cos(bg.angle) * (x - 0.5) + np.sin(bg.angle) * (y - 0.5)  # in [-0.71, 0.71]
    if bg.style == "gradient":
        factor = 1.0 + bg.strength * t / 0.71
        img = img * factor[None] if not dark else img + 0.5 * bg.strength * (t[None] / 0.71 + 1)
    elif bg.style == "noise":
        n = _smooth_noise(bg.noise_seed, size)
        img = img + 0.5 * bg.strength * n[None]
    elif bg.style == "stripes":
        band = np.mod(t / bg.period, 1.0) < 0.5
        shade = rgb + 0.15 if dark else rgb * (1 - 0.6 * bg.strength)
        img = np.where(band[None], shade[:, None, None], img)
    else:
        raise ValueError(f"unknown background style {bg.style!r}; known: {BACKGROUND_STYLES}")
    return np.clip(img, 0.0, 1.0)


def render_object(obj: ObjectSpec, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask (H, W) bool, colour image (3, H, W)) of one object."""
    x, y = _grid(size)
    dx, dy = (x - obj.cx) / obj.size, (y - obj.cy) / obj.size
    c, s = np.cos(obj.angle), np.sin(obj.angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    mask = shape_mask(obj.shape, u, v)
    rgb = obj.rgb
    pattern = texture_pattern(obj, u, v)
    colour = np.where(pattern[None], texture_shade(rgb)[:, None, None], rgb[:, None, None])
    return mask, colour


def render_scene(spec: SceneSpec, size: int = 64) -> Scene:
    """Render `spec` at `size` x `size`. Later objects are drawn over earlier ones; each
    mask holds the pixels of its object that are visible in the image."""
    img = render_background(spec.background, size)
    masks = []
    for obj in spec.objects:
        mask, colour = render_object(obj, size)
        img = np.where(mask[None], colour, img)
        masks = [m & ~mask for m in masks]
        masks.append(mask)
    image = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    mask_t = torch.from_numpy(np.stack(masks)) if masks else torch.zeros(0, size, size, dtype=torch.bool)
    return Scene(image=image, masks=mask_t, caption=caption_for(spec), spec=spec)


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------

RngLike = int | np.random.Generator | Sequence[int]


def as_rng(rng_or_seed: RngLike) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def allowed_colours(background_colour: str) -> list[str]:
    """Object colours that stay visible on `background_colour`."""
    bg = np.asarray(BACKGROUND_COLOURS[background_colour])
    return [c for c, rgb in COLOURS.items() if np.linalg.norm(np.asarray(rgb) - bg) >= MIN_BACKGROUND_DISTANCE]


def sample_background(rng: np.random.Generator, colour: str | None = None, style: str | None = None,
                      green_screen_p: float = 0.08) -> BackgroundSpec:
    if colour is None:
        if rng.random() < green_screen_p:
            colour = GREEN_SCREEN
        else:
            names = [n for n in BACKGROUND_COLOURS if n != GREEN_SCREEN]
            colour = names[rng.integers(len(names))]
    if style is None:
        style = "flat" if colour == GREEN_SCREEN else BACKGROUND_STYLES[rng.integers(len(BACKGROUND_STYLES))]
    jitter = (0.0, 0.0, 0.0) if colour == GREEN_SCREEN else tuple(rng.uniform(-0.03, 0.03, 3).round(4))
    return BackgroundSpec(
        colour=colour, style=style, angle=float(rng.uniform(0, 2 * np.pi)),
        period=float(rng.uniform(0.08, 0.16)), strength=float(rng.uniform(0.15, 0.3)),
        noise_seed=int(rng.integers(2**31)), jitter=jitter,
    )


def sample_object(rng: np.random.Generator, background_colour: str, *, size_range=SINGLE_OBJECT_SIZES,
                  shape: str | None = None, colour: str | None = None, texture: str | None = None,
                  plain_p: float = 0.4) -> ObjectSpec:
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    if colour is None:
        options = allowed_colours(background_colour)
        colour = options[rng.integers(len(options))]
    if texture is None:
        texture = "plain" if rng.random() < plain_p else TEXTURES[1 + rng.integers(len(TEXTURES) - 1)]
    size = float(rng.uniform(*size_range))
    margin = size * 0.95
    return ObjectSpec(
        shape=shape, colour=colour, texture=texture,
        cx=float(rng.uniform(margin, 1 - margin)), cy=float(rng.uniform(margin, 1 - margin)),
        size=size, angle=float(rng.uniform(-0.25, 0.25)),
        jitter=tuple(rng.uniform(-COLOUR_JITTER, COLOUR_JITTER, 3).round(4)),
        texture_period=float(rng.uniform(0.42, 0.6)),
        texture_angle=float(rng.integers(4) * np.pi / 4),
        texture_phase=float(rng.uniform(0, 1)),
    )


def sample_spec(rng_or_seed: RngLike, n_objects: int | None = None, two_object_p: float = 0.3,
                **object_kwargs) -> SceneSpec:
    """A random scene spec: one object, or two non-overlapping objects that differ in colour
    or shape. `object_kwargs` (shape, colour, texture, plain_p) go to every object."""
    rng = as_rng(rng_or_seed)
    if n_objects is None:
        n_objects = 2 if rng.random() < two_object_p else 1
    bg = sample_background(rng)
    if n_objects == 1:
        return SceneSpec(objects=(sample_object(rng, bg.colour, **object_kwargs),), background=bg)
    objects: list[ObjectSpec] = []
    for _ in range(200):
        obj = sample_object(rng, bg.colour, size_range=PAIR_OBJECT_SIZES, **object_kwargs)
        if any((obj.colour, obj.shape) == (o.colour, o.shape) for o in objects):
            continue
        if any(np.hypot(obj.cx - o.cx, obj.cy - o.cy) < 1.08 * (obj.size + o.size) for o in objects):
            continue
        objects.append(obj)
        if len(objects) == n_objects:
            break
    if len(objects) < n_objects:  # pragma: no cover - practically unreachable for n <= 3
        raise RuntimeError("could not place the objects without overlap")
    return SceneSpec(objects=tuple(objects), background=bg)


def sample_scene(rng_or_seed: RngLike, size: int = 64, n_objects: int | None = None, **kwargs) -> Scene:
    """Sample a spec (deterministic per seed) and render it at `size`."""
    return render_scene(sample_spec(rng_or_seed, n_objects=n_objects, **kwargs), size)


# --------------------------------------------------------------------------------------
# Pixel-based classifiers (no CLIP): used to measure edits
# --------------------------------------------------------------------------------------


def _as_pixels(pixels) -> np.ndarray:
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.detach().float().cpu().numpy()
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 3)
    return pixels


def robust_colour(pixels) -> np.ndarray:
    """Median RGB of the brighter half of the pixels (luminance >= its median). For a plain
    object it is the object's colour; for a textured one the main colour, since the texture
    shade is darker (lighter only for black, whose nearest prototype stays black)."""
    p = _as_pixels(pixels)
    if len(p) == 0:
        raise ValueError("no pixels to classify")
    lum = p @ np.array([0.299, 0.587, 0.114])
    return np.median(p[lum >= np.median(lum)], axis=0)


def colour_distances(pixels, candidates: Iterable[str] | None = None) -> dict[str, float]:
    """RGB distance from `robust_colour(pixels)` to each candidate prototype."""
    rgb = robust_colour(pixels)
    names = list(candidates) if candidates is not None else list(COLOURS)
    table = {**BACKGROUND_COLOURS, **COLOURS}
    return {n: float(np.linalg.norm(rgb - np.asarray(table[n]))) for n in names}


def classify_colour(pixels, candidates: Iterable[str] | None = None) -> str:
    """Name of the colour prototype nearest to the robust colour of `pixels` ((N, 3) or
    (3, H, W)-like values in [0, 1]; a torch tensor of shape (3, N) must be transposed)."""
    d = colour_distances(pixels, candidates)
    return min(d, key=d.get)


def classify_texture(image, mask) -> str:
    """Texture of the object under `mask` in `image` ((3, H, W) in [0, 1]): 'plain' when the
    luminance is nearly uniform, else by the fraction of dark-shade pixels and the structure
    of the pattern (stripes: one orientation; checks: half the pixels; dots: a small fraction).
    Reliable on clean renders of objects at least ~24 px across."""
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask, dtype=bool)
    lum = np.tensordot(np.array([0.299, 0.587, 0.114]), np.asarray(image, dtype=np.float64), axes=1)
    # Ignore the mask boundary (mixed pixels after resampling).
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    if inner.sum() < 16:
        inner = mask
    values = lum[inner]
    lo, hi = np.percentile(values, 5), np.percentile(values, 95)
    if hi - lo < 0.08:
        return "plain"
    thr = 0.5 * (lo + hi)
    main_is_bright = np.mean(values >= thr) >= 0.5
    minor = (lum < thr) if main_is_bright else (lum >= thr)
    frac = float(np.mean(minor[inner]))
    if frac < 0.05:
        return "plain"
    # Orientation structure: stripes change along one direction only, so the minor map of
    # a stripe is (locally) constant along the other; measure neighbour agreement.
    m = minor & inner
    agree = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        h, w = m.shape
        ys = slice(0, h - dy)
        ys2 = slice(dy, h)
        xs = slice(max(-dx, 0), w - max(dx, 0))
        xs2 = slice(max(dx, 0), w - max(-dx, 0))
        both = inner[ys, xs] & inner[ys2, xs2]
        if both.sum() == 0:
            agree.append(1.0)
            continue
        agree.append(float(np.mean(m[ys, xs][both] == m[ys2, xs2][both])))
    spread = max(agree) - min(agree)
    if frac < 0.27:
        return "dotted" if spread < 0.12 else "striped"
    if spread >= 0.12:
        return "striped"
    return "checkered" if frac > 0.42 else "striped"


__all__ = [
    "COLOURS", "BACKGROUND_COLOURS", "GREEN_SCREEN", "SHAPES", "TEXTURES", "BACKGROUND_STYLES",
    "SINGLE_OBJECT_SIZES", "PAIR_OBJECT_SIZES",
    "TEXT_TEMPLATES", "SCREEN_TEMPLATES", "VOCABULARY", "known_words", "ObjectSpec", "BackgroundSpec", "SceneSpec",
    "Scene", "article", "object_phrase", "background_phrase", "caption_for", "render_scene",
    "render_background", "render_object", "shape_mask", "sample_background", "sample_object",
    "sample_spec", "sample_scene", "allowed_colours", "as_rng", "robust_colour", "colour_distances",
    "classify_colour", "classify_texture",
]
