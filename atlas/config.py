"""The architecture part of a public NLA ``config.json``.

Key names are those of the public NLA code. Sizes default to the NLA reference values when a key
is absent; the frame geometry (``resx``, ``resy``, ``maximum_number_of_frames``) has no default,
because a wrong value silently breaks the coordinate normalisation.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AtlasConfig", "ATLAS_SKIP_LAYERS", "ARCHITECTURE_DEFAULTS", "GEOMETRY_KEYS"]

#: Skip layers of the shared atlas network (hard-coded in the public NLA code, not in config.json).
ATLAS_SKIP_LAYERS: tuple[int, ...] = (4, 7)

#: config.json keys for the frame geometry: (key, AtlasConfig field).
GEOMETRY_KEYS: tuple[tuple[str, str], ...] = (
    ("resx", "width"),
    ("resy", "height"),
    ("maximum_number_of_frames", "num_frames"),
)

#: config.json architecture keys -> (AtlasConfig field, NLA default).
ARCHITECTURE_DEFAULTS: dict[str, tuple[str, Any]] = {
    "number_of_channels_mapping1": ("foreground_mapping_width", 256),
    "number_of_layers_mapping1": ("foreground_mapping_layers", 6),
    "use_positional_encoding_mapping1": ("foreground_mapping_use_encoding", False),
    "number_of_positional_encoding_mapping1": ("foreground_mapping_frequencies", 4),
    "number_of_channels_mapping2": ("background_mapping_width", 256),
    "number_of_layers_mapping2": ("background_mapping_layers", 4),
    "use_positional_encoding_mapping2": ("background_mapping_use_encoding", False),
    "number_of_positional_encoding_mapping2": ("background_mapping_frequencies", 2),
    "number_of_channels_atlas": ("atlas_width", 256),
    "number_of_layers_atlas": ("atlas_layers", 8),
    "positional_encoding_num_atlas": ("atlas_frequencies", 10),
    "number_of_channels_alpha": ("alpha_width", 256),
    "number_of_layers_alpha": ("alpha_layers", 8),
    "positional_encoding_num_alpha": ("alpha_frequencies", 5),
    "uv_mapping_scale": ("uv_mapping_scale", 0.8),
}


@dataclass
class AtlasConfig:
    """Sizes of an NLA model and of the video it explains.

    Attributes:
        width: frame width W in pixels (``resx``).
        height: frame height H in pixels (``resy``).
        num_frames: frame count N used for the time normalisation (``maximum_number_of_frames``;
            NLA itself uses min(maximum_number_of_frames, frames in the video folder)).
        foreground_mapping_*: foreground mapping network (``*_mapping1``): width, linear layers,
            whether the input is positionally encoded and with how many frequencies.
        background_mapping_*: background mapping network (``*_mapping2``), same fields.
        atlas_width, atlas_layers, atlas_frequencies: shared atlas network (uv -> rgb).
        alpha_width, alpha_layers, alpha_frequencies: alpha network.
        uv_mapping_scale: uv scale of the mapping pre-training (0.8); kept for round trips.
        extra: every other config.json key, written back unchanged.
    """

    width: int
    height: int
    num_frames: int
    foreground_mapping_width: int = 256
    foreground_mapping_layers: int = 6
    foreground_mapping_use_encoding: bool = False
    foreground_mapping_frequencies: int = 4
    background_mapping_width: int = 256
    background_mapping_layers: int = 4
    background_mapping_use_encoding: bool = False
    background_mapping_frequencies: int = 2
    atlas_width: int = 256
    atlas_layers: int = 8
    atlas_frequencies: int = 10
    alpha_width: int = 256
    alpha_layers: int = 8
    alpha_frequencies: int = 5
    uv_mapping_scale: float = 0.8
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("width", "height", "num_frames"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"AtlasConfig.{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))

    @property
    def larger_side(self) -> int:
        """L = max(W, H), the spatial normalisation length."""
        return max(self.width, self.height)

    @classmethod
    def from_json_dict(cls, values: dict[str, Any], **overrides: Any) -> AtlasConfig:
        """Build from a parsed config.json.

        Args:
            values: the parsed JSON object.
            **overrides: AtlasConfig fields that take precedence over the file (e.g.
                ``num_frames`` when the fitted video had fewer frames than the maximum).

        Raises:
            KeyError: a geometry key (``resx``, ``resy``, ``maximum_number_of_frames``) is absent
                and not overridden; the message names it.
        """
        overrides = {k: v for k, v in overrides.items() if v is not None}
        kwargs: dict[str, Any] = {}
        for key, name in GEOMETRY_KEYS:
            if name in overrides:
                kwargs[name] = overrides.pop(name)
            elif key in values:
                kwargs[name] = values[key]
            else:
                raise KeyError(key)
        for key, (name, default) in ARCHITECTURE_DEFAULTS.items():
            kwargs[name] = overrides.pop(name, values.get(key, default))
        known = {key for key, _ in GEOMETRY_KEYS} | set(ARCHITECTURE_DEFAULTS)
        kwargs["extra"] = {k: v for k, v in values.items() if k not in known}
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_json_dict(self) -> dict[str, Any]:
        """config.json content with the public NLA key names (``extra`` keys included)."""
        values: dict[str, Any] = dict(self.extra)
        for key, name in GEOMETRY_KEYS:
            values[key] = getattr(self, name)
        for key, (name, _) in ARCHITECTURE_DEFAULTS.items():
            values[key] = getattr(self, name)
        return values

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> AtlasConfig:
        """Read a config.json file (see :meth:`from_json_dict`)."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_json_dict(json.load(handle), **overrides)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json_dict` as indented JSON."""
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_json_dict(), handle, indent=4)

    def replace(self, **changes: Any) -> AtlasConfig:
        """Copy with some fields changed."""
        return dataclasses.replace(self, **changes)
