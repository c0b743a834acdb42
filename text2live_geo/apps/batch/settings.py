"""Each clip's settings: the batch's config file and key=value overrides split into the batch's own
keys (BatchConfig) and edit keys, then, per clip, the edit keys of its config (video or image)
merged with its manifest entry's into the whole config it runs with.

Order, later wins: the config's defaults (its base YAML), the `--config` file, the key=value
overrides, the manifest entry, and what the batch sets itself (the clip's path, `output_dir`,
`run_name`). A batch-wide key applies to the clips whose config has it (`layer` to videos,
`mode` to images); a key neither config (nor BatchConfig) has is an error naming it.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ...common.config import (
    ConfigError,
    config_values,
    escape_interpolations,
    legacy_keys,
    string_list_keys,
    to_yaml,
    wrap_scalars,
)
from ...config import ImageEditConfig, VideoEditConfig
from .config import BatchConfig
from .discover import PATH_KEYS, ClipSpec
from .jobs import BatchError, ClipJob

__all__ = ["BATCH_KEYS", "EditSettings", "SCHEMAS", "compose_jobs", "leaf_keys", "load_batch_settings"]

logger = logging.getLogger(__name__)

SCHEMAS: dict[str, type] = {"video": VideoEditConfig, "image": ImageEditConfig}
#: the top-level keys that are the batch's own (output_dir and run_name name the batch folder)
BATCH_KEYS = tuple(item.name for item in fields(BatchConfig))
#: keys each clip gets from the batch, whatever the config or overrides say
SOURCE_KEY = {"video": "video.frames", "image": "image"}


def leaf_keys(schema: type) -> set[str]:
    """The dotted keys of a config's values (``text.src``, ``steps``, ...)."""
    keys: set[str] = set()

    def walk(node: DictConfig, prefix: str) -> None:
        for key in node:
            child = node._get_node(key)
            if isinstance(child, DictConfig):
                walk(child, f"{prefix}{key}.")
            else:
                keys.add(f"{prefix}{key}")

    walk(OmegaConf.structured(schema), "")
    return keys


def _flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _nest(flat: dict[str, Any]) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def _config_error(error: OmegaConfBaseException, where: str = "") -> ConfigError:
    key = getattr(error, "full_key", None) or getattr(error, "key", None)
    reason = str(error).splitlines()[0]
    prefix = f"{where}: " if where else ""
    return ConfigError(f"{prefix}bad config key '{key}': {reason}" if key else f"{prefix}bad config: {reason}")


def renamed_legacy_keys(flat: dict[str, Any], where: str = "") -> dict[str, Any]:
    """`flat` with a renamed key of the edit configs (`LEGACY_KEYS`: `log_every`, `fit.bootstrap`,
    ...) under its new name, with one warning line each, as the CLIs read them; the new name wins
    where both are given."""
    renamed = dict(flat)
    for schema in SCHEMAS.values():
        for legacy in legacy_keys(schema):
            if legacy.copy or legacy.old not in renamed:
                continue
            value = renamed.pop(legacy.old)
            renamed.setdefault(legacy.new, value)
            logger.warning(f"{where + ': ' if where else ''}config key '{legacy.old}' is now '{legacy.new}' "
                           f"(the old name still works)")
    return renamed


@dataclass
class EditSettings:
    """The edit keys that apply to every clip (from --config and key=value), flat and dotted,
    with the base YAML of each config (or None: the dataclass defaults, which they equal)."""

    flat: dict[str, Any]
    bases: dict[str, Path | None]


def load_batch_settings(config_path: str | Path | None, overrides: Sequence[str],
                        base_configs: dict[str, str | Path | None] | None = None
                        ) -> tuple[BatchConfig, EditSettings]:
    """Split `--config` and key=value overrides into the BatchConfig and the edit keys.

    Raises:
        ConfigError: a file that is missing or not YAML, an override not of the form key=value,
            a bad batch value, or a key that is neither the batch's nor a key of the video or
            image config (the message names it).
    """
    bases = {kind: (Path(path) if path else None) for kind, path in (base_configs or {}).items()}
    file_batch: dict = {}
    file_edit: dict = {}
    try:
        if config_path is not None:
            path = Path(config_path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            loaded = OmegaConf.to_container(OmegaConf.load(path))
            if loaded is None:
                loaded = {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file {path} is not a mapping of keys to values")
            for key, value in loaded.items():
                (file_batch if key in BATCH_KEYS else file_edit)[key] = value
        batch_overrides, edit_overrides = [], []
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override '{item}' is not of the form key=value")
            key = item.split("=", 1)[0].strip()
            (batch_overrides if key.split(".")[0] in BATCH_KEYS else edit_overrides).append(item)
        cfg = OmegaConf.structured(BatchConfig)
        if bases.get("batch") is not None:
            cfg = OmegaConf.merge(cfg, OmegaConf.load(bases["batch"]))
        cfg = OmegaConf.merge(cfg, file_batch, OmegaConf.from_dotlist(batch_overrides))
        batch = OmegaConf.to_object(cfg)
        edit_flat = _flatten(file_edit)
        edit_flat.update(_flatten(OmegaConf.to_container(OmegaConf.from_dotlist(edit_overrides))))
    except OmegaConfBaseException as error:
        raise _config_error(error) from None
    known = set().union(*(leaf_keys(schema) for schema in SCHEMAS.values()))
    edit_flat = renamed_legacy_keys(edit_flat)
    for key in edit_flat:
        if key not in known:
            raise ConfigError(f"unknown key '{key}': neither a batch key ({', '.join(BATCH_KEYS)}) nor a key of "
                              f"the video or image config")
    for key in SOURCE_KEY.values():
        if edit_flat.pop(key, None):
            logger.info(f"note: {key} is each clip's own path in a batch; the one given applies to no clip")
    if batch.workers < 0 or batch.threads < 0:
        raise ConfigError(f"workers and threads must be >= 0 (0: automatic), got {batch.workers} and {batch.threads}")
    if batch.ray.max_retries < 0 or batch.ray.num_cpus < 0 or (batch.ray.num_gpus or 0) < 0:
        raise ConfigError("ray.max_retries, ray.num_cpus and ray.num_gpus must be >= 0")
    return batch, EditSettings(flat=_absolute_paths(edit_flat), bases={k: bases.get(k) for k in SCHEMAS})


def _absolute_paths(flat: dict[str, Any]) -> dict[str, Any]:
    """Path keys (and a clip.model that is a local folder) made absolute: the clip's settings,
    and so its hash, do not depend on the folder the batch was started from, and workers with
    another working folder (Ray) find the files."""
    flat = dict(flat)
    for key in (*PATH_KEYS, "clip.model"):
        value = flat.get(key)
        if isinstance(value, str) and value:
            path = Path(value).expanduser()
            if key != "clip.model" or path.exists():
                flat[key] = str(path.resolve())
    return flat


def source_fingerprint(source: Path) -> list:
    """What identifies a clip's files cheaply: (name, size, modification time) of the file, or of
    each file in a frames folder. A replaced or touched clip counts as changed."""
    files = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _settings_hash(cfg: object, source: Path) -> str:
    """Hash of a clip's whole config (less output_dir / run_name, which only say where it goes)
    and of its files' fingerprint."""
    portable = config_values(cfg)
    portable.pop("output_dir", None)
    portable.pop("run_name", None)
    text = json.dumps({"settings": portable, "source": source_fingerprint(source)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def compose_jobs(specs: Sequence[ClipSpec], edit: EditSettings, batch_dir: Path) -> list[ClipJob]:
    """Each clip's whole config (see the module's docstring) as a job.

    Raises:
        BatchError: a manifest entry with a key its clip's config does not have.
        ConfigError: a value of the wrong type or outside a choice's set (naming the clip and key).
    """
    known = {kind: leaf_keys(schema) for kind, schema in SCHEMAS.items()}
    for spec in specs:
        spec.settings = renamed_legacy_keys(spec.settings, spec.where)
    shared_atlas = [spec.label for spec in specs if spec.kind == "video" and "atlas.checkpoint" not in spec.settings]
    if edit.flat.get("atlas.checkpoint") and len(shared_atlas) > 1:
        logger.warning(f"atlas.checkpoint={edit.flat['atlas.checkpoint']} applies to {len(shared_atlas)} clips "
                       f"({', '.join(shared_atlas[:3])}{' ...' if len(shared_atlas) > 3 else ''}); an atlas belongs "
                       f"to one clip: give each its own in a manifest, or none to fit them")
    jobs = []
    list_keys = {kind: string_list_keys(schema) for kind, schema in SCHEMAS.items()}
    for spec in specs:
        schema, keys = SCHEMAS[spec.kind], known[spec.kind]
        for key in spec.settings:
            if key not in keys:
                raise BatchError(f"{spec.where}: unknown key '{key}' (not a key of the {spec.kind} config)")
        common = {key: value for key, value in edit.flat.items() if key in keys}
        forced = {SOURCE_KEY[spec.kind]: str(spec.source), "output_dir": str(batch_dir), "run_name": spec.name}
        try:
            cfg = OmegaConf.structured(schema)
            if edit.bases.get(spec.kind) is not None:
                cfg = OmegaConf.merge(cfg, OmegaConf.load(edit.bases[spec.kind]))
            # a single text where the config takes a list of texts is a one-text list, as in the CLIs
            # a manifest's values are taken literally: a `${...}` in them is text, never resolved
            layers = [wrap_scalars(OmegaConf.create(_nest(flat)), list_keys[spec.kind])
                      for flat in (common, escape_interpolations(_absolute_paths(spec.settings)), forced)]
            cfg = OmegaConf.merge(cfg, *layers)
            cfg = OmegaConf.to_object(cfg)
        except OmegaConfBaseException as error:
            raise _config_error(error, spec.where) from None
        if any(not texts or not all(text.strip() for text in texts)
               for texts in (cfg.text.src, cfg.text.comp, cfg.text.screen)):
            raise BatchError(f"{spec.where}: text.src, text.comp and text.screen must not be empty")
        group = None
        if spec.kind == "video" and not cfg.atlas.checkpoint:
            group = f"atlas fit of {spec.source}"  # edits that fit one clip's atlas wait for each other
        jobs.append(ClipJob(name=spec.name, label=spec.label, source=str(spec.source), kind=spec.kind,
                            settings_yaml=to_yaml(cfg), settings_hash=_settings_hash(cfg, spec.source),
                            run_dir=str(batch_dir / spec.name), group=group))
    return jobs
