"""A batch's input -> its clips: a folder (every video file and every sub-folder of frames in it is
a video clip, every image an image clip) or a manifest YAML listing clips with their own settings.

A manifest is a list of entries, or a mapping whose one key ``clips`` holds that list. An entry is
a clip's path, or a mapping with ``clip`` (the path: a video file, a folder of frames or an
image), an optional ``name`` (its folder in the batch folder; default: the file stem or folder
name) and any key of the video or image config, dotted (``text.src: ...``) or nested
(``text: {src: ...}``)::

    clips:
      - clip: shoot/swan.mp4
        text.src: swan
        text.comp: golden swan
      - clip: shoot/car_frames
        name: car-winter
        layer: background
        text: {src: road, comp: snowy road, screen: snow}
      - shoot/still.jpg

Relative paths (``clip``, ``atlas.checkpoint``, ``fit.masks``, ``atlas.cache_dir``) are relative
to the manifest's folder. The keys themselves are checked against the configs by
:mod:`text2live_geo.apps.batch.settings`.
"""
from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...common.media_files import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_frame_files, natural_key
from .jobs import BatchError

__all__ = ["ClipSpec", "MANIFEST_SUFFIXES", "PATH_KEYS", "RESERVED_NAMES", "check_name", "clip_kind", "discover_clips",
           "display_label", "input_name", "safe_name", "unique_names"]

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".yaml", ".yml")
#: config keys holding paths, resolved against the manifest's folder when relative
PATH_KEYS = ("atlas.checkpoint", "fit.masks", "atlas.cache_dir")
#: keys an entry may have besides the configs' keys
ENTRY_KEYS = ("clip", "name")


@dataclass
class ClipSpec:
    """One clip of the input, before its settings are composed.

    Attributes:
        name: its folder name in the batch folder.
        label: how messages name it: its file name (folder input), or its entry's name.
        source: the clip's absolute path.
        kind: "video" (a video file or a folder of frames) or "image".
        settings: the manifest entry's settings, flat dotted keys (empty for a folder's clips).
        where: where it was given, for messages ("manifest.yaml, entry 2 (swan.mp4)").
    """

    name: str
    label: str
    source: Path
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    where: str = ""


def clip_kind(path: Path) -> str | None:
    """"video" for a video file or a folder holding image files, "image" for an image file, else None."""
    if path.is_dir():
        try:
            return "video" if list_frame_files(path) else None
        except OSError:
            return None
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def input_name(path: Path) -> str:
    """The default batch folder stem: the input folder's name or the manifest's stem."""
    path = path.resolve()
    return (path.stem if path.is_file() else path.name) or "batch"


def _default_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


# ------------------------------------------------------------------------- clip folder names
#: names the batch folder holds itself (its dot folders cannot be taken: a clip name never starts with a dot)
RESERVED_NAMES = ("report.json", "report.html")
#: names Windows reserves for devices (with any extension), refused there as file names
_DEVICE_NAMES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
#: characters that are never part of a clip folder name (path separators, and what Windows forbids)
_UNSAFE_CHARACTERS = set('/\\<>:"|?*')
#: a clip folder name is at most this many bytes (UTF-8): file systems allow 255, and a suffix must fit
MAX_NAME_BYTES = 120


def safe_name(raw: str) -> str:
    """The folder name a clip's own name becomes (docs/batch.md, "Clip folder names"):

    1. Unicode NFC; every control character, path separator and character Windows forbids in
       file names (``<>:"|?*``) becomes ``_``;
    2. leading and trailing spaces and dots are removed (a dot name would be hidden, or be one of
       the batch's own folders ``.batch``, ``.report``, ``.superseded``, ``.atlas_cache``);
    3. cut to 120 bytes of UTF-8 (on a character boundary); nothing left: ``clip``;
    4. a reserved name (``report.json``, ``report.html``, a Windows device name such as ``con``
       or ``nul.txt``, in any case) gets ``-clip`` appended.

    Uniqueness is `unique_names`' (case-insensitive)."""
    name = unicodedata.normalize("NFC", str(raw))
    name = "".join("_" if unicodedata.category(c).startswith("C") or c in _UNSAFE_CHARACTERS else c for c in name)
    name = name.strip(" .")
    encoded = name.encode("utf-8")[:MAX_NAME_BYTES]
    name = encoded.decode("utf-8", errors="ignore").rstrip(" .") or "clip"
    if name.casefold() in RESERVED_NAMES or name.split(".")[0].casefold() in _DEVICE_NAMES:
        name += "-clip"
    return name


def unique_names(names: list[str], taken: set[str] | None = None) -> list[str]:
    """`names` made unique ignoring case (file systems that ignore case would merge them): the
    first keeps its name, later ones get ``-2``, ``-3``, ... (in the given order, which is the
    input's: a folder's sorted listing, a manifest's entries); `taken` holds casefolded names no
    one may get (a manifest's explicit names)."""
    used = set(taken or ())
    unique = []
    for name in names:
        candidate, index = name, 1
        while candidate.casefold() in used:
            index += 1
            candidate = f"{name}-{index}"
        used.add(candidate.casefold())
        unique.append(candidate)
    return unique


def check_name(name: str, where: str) -> str:
    """A name the user gave (a manifest entry's ``name:``, ``run_name``): refused with one line
    unless it is already a safe folder name (`safe_name` leaves it as it is)."""
    if not isinstance(name, str) or not name.strip():
        raise BatchError(f"{where}: name must be a non-empty string")
    safe = safe_name(name)
    if safe != name:
        shown = name.encode("unicode_escape").decode("ascii")
        raise BatchError(f"{where}: name '{shown}' is not a safe folder name (no slashes, control characters, "
                         f"<>:\"|?*, leading or trailing dots or spaces, reserved names): e.g. '{safe}'")
    return name


def display_label(label: str) -> str:
    """A clip's label for one-line messages and the report: control characters (a newline in a
    file name) shown escaped, so a line stays one line."""
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c).startswith("C") else c
                   for c in str(label))


# ---------------------------------------------------------------------------- folder
def _folder_clips(folder: Path, exclude: Path | None) -> list[ClipSpec]:
    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=natural_key)
    if not entries:
        raise BatchError(f"folder '{folder}' is empty: put video files, folders of frames or images in it "
                         f"(or give a manifest .yaml)")
    clips: list[tuple[Path, str]] = []
    skipped: list[str] = []
    for path in entries:
        resolved = path.resolve()
        if exclude is not None and (resolved == exclude or resolved in exclude.parents):
            continue  # the batch's own output folder inside its input folder
        kind = clip_kind(path)
        if kind is None:
            skipped.append(path.name + ("/" if path.is_dir() else ""))
        else:
            clips.append((path, kind))
    if not clips:
        raise BatchError(f"folder '{folder}' holds no clips: none of its {len(entries)} entries is a video file "
                         f"({', '.join(VIDEO_EXTENSIONS)}), a folder of frames or an image "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    if skipped:
        logger.info(f"note: skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} of '{folder}' that "
                    f"are not clips: {', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}")
    stems: dict[str, int] = {}
    for path, _ in clips:
        stem = safe_name(_default_name(path)).casefold()
        stems[stem] = stems.get(stem, 0) + 1
    # a.mp4 and a.mov (or a.png and a/) would share the folder 'a': they keep their full names;
    # what still collides (x.png and x.png.webp, A.mp4 and a.mov) is numbered in listing order
    wanted = [safe_name(_default_name(path)) if stems[safe_name(_default_name(path)).casefold()] == 1
              else safe_name(path.name) for path, _ in clips]
    return [ClipSpec(name=name, label=display_label(path.name), source=path.resolve(), kind=kind,
                     where=f"'{display_label(str(path))}'")
            for (path, kind), name in zip(clips, unique_names(wanted))]


# -------------------------------------------------------------------------- manifest
def _flatten(mapping: dict, where: str, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise BatchError(f"{where}: key {key!r} is not a string")
        dotted = prefix + key
        if isinstance(value, dict):
            if not value:
                raise BatchError(f"{where}: key '{dotted}' is empty")
            flat.update(_flatten(value, where, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _manifest_entries(path: Path) -> list:
    import yaml  # omegaconf's dependency

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise BatchError(f"manifest '{path}' is not valid YAML{at}: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BatchError(f"could not read manifest '{path}': {error}") from None
    if isinstance(data, dict):
        unknown = [key for key in data if key != "clips"]
        if unknown:
            raise BatchError(f"manifest '{path}': unknown top-level key '{unknown[0]}' (a manifest is a list of "
                             f"clips, or a mapping with one key, clips; settings for every clip go in --config "
                             f"or key=value)")
        data = data.get("clips")
    if not isinstance(data, list):
        raise BatchError(f"manifest '{path}' must list clips (a YAML list, or 'clips:' with a list)")
    if not data:
        raise BatchError(f"manifest '{path}' lists no clips")
    return data


def _manifest_clips(path: Path) -> list[ClipSpec]:
    base = path.parent.resolve()
    specs: list[ClipSpec] = []
    names: dict[str, int] = {}
    for number, entry in enumerate(_manifest_entries(path), start=1):
        where = f"manifest '{path.name}', entry {number}"
        if isinstance(entry, str):
            entry = {"clip": entry}
        if not isinstance(entry, dict):
            raise BatchError(f"{where}: an entry is a clip's path or a mapping with clip: and its settings")
        clip = entry.get("clip")
        if isinstance(clip, dict):
            raise BatchError(f"{where}: clip is the clip's path; the CLIP model is clip.model: (dotted)")
        if not isinstance(clip, str) or not clip.strip():
            raise BatchError(f"{where}: no clip: give the clip's path (a video file, a folder of frames or an image)")
        source = Path(clip).expanduser()
        source = source if source.is_absolute() else base / source
        where = f"{where} ({display_label(clip)})"
        if not source.exists():
            relative = "" if Path(clip).expanduser().is_absolute() else \
                f" (relative paths start at the manifest's folder, {base})"
            raise BatchError(f"{where}: clip '{clip}' not found{relative}")
        kind = clip_kind(source)
        if kind is None:
            raise BatchError(f"{where}: '{clip}' is neither a video file, a folder of frames nor an image")
        settings = _flatten({k: v for k, v in entry.items() if k not in ENTRY_KEYS}, where)
        for key in ("video.frames", "image"):
            if key in settings:
                raise BatchError(f"{where}: the clip's path is clip:, not {key}")
        for key in ("output_dir", "run_name"):
            if key in settings:
                raise BatchError(f"{where}: {key} is the batch's (each clip's folder is <output_dir>/<run_name>/"
                                 f"<name>): give the entry a name: instead")
        for key in PATH_KEYS:
            value = settings.get(key)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                settings[key] = str(base / Path(value).expanduser())
        if "name" in entry:
            name = check_name(entry["name"], where)
            if name.casefold() in names:
                raise BatchError(f"manifest '{path.name}': entries {names[name.casefold()]} and {number} both write "
                                 f"to the clip folder '{name}' (names that differ only in case count as one): give "
                                 f"one of them another name:")
            names[name.casefold()] = number
        else:
            name = None  # derived from the clip's path below, around the explicit names
        label = display_label(entry.get("name", source.name))
        specs.append(ClipSpec(name=name, label=label, source=source.resolve(), kind=kind, settings=settings,
                              where=where))
    derived = [index for index, spec in enumerate(specs) if spec.name is None]
    for index, name in zip(derived, unique_names([safe_name(_default_name(specs[i].source)) for i in derived],
                                                 taken=set(names))):
        specs[index].name = name
    return specs


def discover_clips(input_path: str | Path, exclude: Path | None = None) -> list[ClipSpec]:
    """The clips of a folder or a manifest (see the module's docstring).

    Args:
        exclude: a folder not to take as a clip (the batch's own output, when it is inside the
            input folder).

    Raises:
        BatchError: a missing input, an empty folder or one without clips; a manifest that is
            not YAML, lists no clips, has an entry without a clip, a missing clip, a name used
            twice or a key the batch sets itself. Unknown config keys are checked later, by
            :func:`text2live_geo.apps.batch.settings.compose_jobs`.
    """
    path = Path(input_path).expanduser()
    if not path.exists():
        raise BatchError(f"batch input '{path}' not found: give a folder of clips or a manifest .yaml")
    if path.is_dir():
        return _folder_clips(path, exclude.resolve() if exclude is not None else None)
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return _manifest_clips(path)
    raise BatchError(f"batch input '{path}' is neither a folder of clips nor a manifest (.yaml/.yml); "
                     f"to edit one clip use t2l-video or t2l-image")
