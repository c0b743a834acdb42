"""Config loading shared by every layer: typed dataclasses turned into omegaconf structured configs.

Every field is typed, so an unknown or mistyped key, or a value of the wrong type, fails at
load time with the key's name (`ConfigError`). YAML files and `key=value` CLI dotlists are
merged over the dataclass defaults in that order. A schema may list keys it renamed
(`LEGACY_KEYS`): an old name in a file or an override still works, with one warning line.

The schemas themselves live with what they configure: `atlas.settings` (fitting an atlas),
`text2live_geo.config` (edits), `text2live_geo.apps.batch.settings` (batches).
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError

logger = logging.getLogger(__name__)


class ConfigError(UserError, ValueError):
    """A config file or override is wrong; the message names the key."""


class Choice(StrEnum):
    """A config value from a fixed set. Members are named by their value, so YAML files and
    overrides write the plain word (`loss.guidance=geodesic`), omegaconf rejects any other word
    at load with the key's name, and a member compares equal to (and hashes like) its string."""

    def __str__(self) -> str:
        return self.value


class Precision(Choice):
    """The arithmetic of a run's forward passes (`precision`)."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


_ABSENT = object()


@dataclass(frozen=True)
class LegacyKey:
    """A key a schema renamed. `old` in a YAML file or an override is read as `new` (with one
    warning line), unless the same file or override list sets `new` itself.

    With `copy`, `old` is still a key of its own and its value is also copied to `new`, but only
    when the merged config has `when` (a `(key, value)` pair): `loss.directional` weighed IMC under
    geodesic guidance before `loss.imc` existed, and still weighs the directional loss."""

    old: str
    new: str
    copy: bool = False
    when: tuple[str, str] | None = None


def legacy_keys(schema: type) -> tuple[LegacyKey, ...]:
    """The `LEGACY_KEYS` a schema declares (a class attribute, not a config field)."""
    return tuple(getattr(schema, "LEGACY_KEYS", ()))


def _apply_legacy(incoming, keys: Sequence[LegacyKey], pending: dict[str, Any], warn: bool = True):
    """Rename the legacy keys of one loaded source in place; remember copies for after the merge."""
    for key in keys:
        value = OmegaConf.select(incoming, key.old, default=_ABSENT)
        if value is _ABSENT:
            if OmegaConf.select(incoming, key.new, default=_ABSENT) is not _ABSENT:
                pending.pop(key.new, None)  # a later source sets the new key itself
            continue
        if OmegaConf.select(incoming, key.new, default=_ABSENT) is not _ABSENT:
            pending.pop(key.new, None)
            if not key.copy:
                _delete(incoming, key.old)
            continue
        if key.copy:
            pending[key.new] = (key, value)
            continue
        _delete(incoming, key.old)
        OmegaConf.update(incoming, key.new, value, merge=True)
        if warn:
            logger.warning(f"config key '{key.old}' is now '{key.new}' (the old name still works)")
    return incoming


def _delete(config, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    del node[leaf]


ConfigT = TypeVar("ConfigT")


def load_config(schema: type[ConfigT], config_path: str | Path | Sequence[str | Path] | None = None,
                overrides: Sequence[str] = (), base_path: str | Path | None = None, warn_legacy: bool = True
                ) -> ConfigT:
    """Merge `base_path`, then `config_path` (a YAML file, or several merged in order), then
    `key=value` overrides over `schema`.

    Returns an instance of the dataclass `schema` (typed all the way down: choices are `Choice`
    enums). Raises ConfigError naming the offending key: unknown keys, wrong types and values
    outside a choice's set all fail here, at load. A renamed key (`LEGACY_KEYS`) is read under its
    new name with one warning line (none with `warn_legacy=False`, for a check that loads again later).
    """
    cfg = OmegaConf.structured(schema)
    list_keys = string_list_keys(schema)
    legacy = legacy_keys(schema)
    pending: dict[str, Any] = {}  # new key -> (LegacyKey, value) copied after the merge
    try:
        paths = [config_path] if config_path is None or isinstance(config_path, (str, Path)) else list(config_path)
        for path in [base_path, *paths]:
            if path is None:
                continue
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            loaded = _apply_legacy(OmegaConf.load(path), legacy, pending, warn_legacy)
            cfg = OmegaConf.merge(cfg, wrap_scalars(loaded, list_keys))
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override '{item}' is not of the form key=value")
        if overrides:
            loaded = _apply_legacy(OmegaConf.from_dotlist(list(overrides)), legacy, pending, warn_legacy)
            cfg = OmegaConf.merge(cfg, wrap_scalars(loaded, list_keys))
        for new, (key, value) in pending.items():
            if key.when is None or str(OmegaConf.select(cfg, key.when[0])) == key.when[1]:
                OmegaConf.update(cfg, new, value, merge=True)
                if warn_legacy:
                    condition = f" under {key.when[0]}={key.when[1]}" if key.when else ""
                    logger.warning(f"config key '{key.old}' also sets '{new}'{condition}, as configs written "
                                   f"before '{new}' existed; set '{new}' instead")
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or getattr(error, "key", None)
        reason = str(error).splitlines()[0]
        raise ConfigError(f"bad config key '{key}': {reason}" if key else f"bad config: {reason}") from None


def string_list_keys(schema: type, prefix: str = "") -> list[str]:
    """Dotted keys of the `list[str]` fields of `schema`, nested dataclasses included."""
    keys: list[str] = []
    hints = typing.get_type_hints(schema)
    for item in dataclasses.fields(schema):
        hint = hints[item.name]
        if dataclasses.is_dataclass(hint):
            keys += string_list_keys(hint, f"{prefix}{item.name}.")
        elif typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
            keys.append(prefix + item.name)
    return keys


def wrap_scalars(incoming, keys: Sequence[str]):
    """A loaded YAML / dotlist config with a single value at a `list[str]` key read as a one-item
    list (`text.src=horse` means `text.src=[horse]`; an empty value, a list with one empty text).
    Values are moved as written, never resolved here (an escaped `\\${` stays text)."""
    raw = OmegaConf.to_container(incoming, resolve=False)
    for key in keys:
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node or isinstance(node[leaf], list | tuple):
            continue
        node[leaf] = ["" if node[leaf] is None else str(node[leaf])]
    return OmegaConf.create(raw)


def to_yaml(cfg: object) -> str:
    """YAML of a config dataclass instance (what `load_config` reads back). A text holding ``${``
    (a prompt, a path) is written escaped (``\\${``), so reading it back gives the same text and
    never resolves it as an omegaconf interpolation."""
    return OmegaConf.to_yaml(OmegaConf.create(escape_interpolations(config_values(cfg))))


def config_values(value: Any) -> Any:
    """A config dataclass as plain YAML values (choices as their words), field order kept."""
    if dataclasses.is_dataclass(value):
        return {item.name: config_values(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return {key: config_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [config_values(item) for item in value]
    return value


def flatten_mapping(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested dicts under its dotted key, in their order: ``{"a": {"b": 1}, "c": [2]}``
    -> ``{"a.b": 1, "c": [2]}``. Lists are leaves; an empty dict has no leaves, so it leaves no key."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten_mapping(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def escape_interpolations(value: Any) -> Any:
    """`value` (a string, or lists and mappings of them) with every ``${`` escaped as ``\\${``:
    omegaconf then reads the text literally (a manifest's values, a saved config's texts)."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, dict):
        return {key: escape_interpolations(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escape_interpolations(item) for item in value]
    return value


BASE_CONFIG_HEADER = """\
# Every default of {schema} ({module}), written by scripts/write_base_configs.py.
# The dataclasses are the one source of defaults: change them there and rerun the script
# (a test checks that this file agrees). Example configs and key=value overrides go on top.
"""


def field_comments(schema: type, prefix: str = "") -> dict[str, str]:
    """`dotted.key -> the comment on its line` in the dataclass source, nested dataclasses included."""
    comments: dict[str, str] = {}
    hints = typing.get_type_hints(schema)
    for line in inspect.getsource(schema).splitlines():
        match = re.match(r"\s+(\w+): [^#]*#\s*(.+)$", line)
        if match and match.group(1) in hints:
            comments[prefix + match.group(1)] = match.group(2).strip()
    for item in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[item.name]):
            comments.update(field_comments(hints[item.name], f"{prefix}{item.name}."))
    return comments


def default_yaml(schema: type) -> str:
    """The YAML of `schema`'s defaults, each key with its comment from the dataclass source and
    a header saying where the values come from."""
    comments = field_comments(schema)
    path: list[str] = []
    lines = [BASE_CONFIG_HEADER.format(schema=schema.__name__, module=schema.__module__).rstrip()]
    for line in OmegaConf.to_yaml(OmegaConf.structured(schema)).splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        key = line.strip().split(":")[0]
        path = path[:depth] + [key]
        comment = comments.get(".".join(path))
        lines.append(f"{line:<40} # {comment}" if comment else line)
    return "\n".join(lines) + "\n"


