"""What the web app's jobs do, without Gradio: check and store uploads, compose a job's config the way
the command lines do, run the job in a thread that a stop signal ends within one step, and read its
run folder while it runs (snapshots, `metrics.jsonl`, the batch's `report.json`).

Each job calls the API its command line calls (`edit_image`, `edit_video`, `fitted_atlas_for_video`,
`run_batch`) and writes the same run folder; nothing here keeps state between jobs but the files.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shlex
import shutil
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ...common.config import ConfigError, load_config
from ...common.errors import UserError
from ...common.media_files import IMAGE_EXTENSIONS
from ..batch.settings import leaf_keys
from ..cli import REPO_ROOT, base_config

logger = logging.getLogger(__name__)

#: folders the app keeps under output_dir (no run folder is named so)
UPLOADS_FOLDER = ".uploads"
DOWNLOADS_FOLDER = ".downloads"
#: what the Video tab and /edit_video, /fit_atlas accept: a video file or a zip of frames
CLIP_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".m4v", ".mkv", ".zip")


class UploadError(UserError):
    """An upload the app refuses before any work (type, size, content)."""


# ----------------------------------------------------------------------------- sessions
class Session:
    """One browser tab's state (a `gr.State`): the stop signal of its job. Gradio builds one per tab
    (the class is the State's callable value) and hands the same object to every event of the tab."""

    def __init__(self) -> None:
        self.stop_event = threading.Event()

    def __deepcopy__(self, memo: dict) -> Session:  # Gradio copies a State's value: keep the one object
        return self

    def stop(self) -> None:
        self.stop_event.set()


# ----------------------------------------------------------------------------- overrides
def parse_overrides(text: str | None) -> list[str]:
    """`key=value` entries from a text as a shell would split it (`text.comp="golden horse" steps=300`)."""
    if not text or not text.strip():
        return []
    try:
        entries = shlex.split(text)
    except ValueError as error:
        raise ConfigError(f"overrides: {error} (write key=value entries, quoting values with spaces)") from None
    for entry in entries:
        if "=" not in entry or entry.startswith("="):
            raise ConfigError(f"overrides: '{entry}' is not key=value")
    return entries


def keys_of(entries: Sequence[str]) -> set[str]:
    return {entry.split("=", 1)[0] for entry in entries}


def defaults_for(schema: type, defaults: Sequence[str]) -> list[str]:
    """The app's start-up defaults that are keys of `schema` (an image job gets no `video.*` key)."""
    known = leaf_keys(schema)
    return [entry for entry in defaults
            if (key := entry.split("=", 1)[0]) in known or any(k.startswith(key + ".") for k in known)]


def quote(value: Any) -> str:
    """A text as an override value: quoted for omegaconf when it holds spaces or commas."""
    text = str(value)
    if text.startswith("[") and text.endswith("]"):
        return text  # a list, as a YAML flow sequence
    return "'" + text.replace("'", "\\'") + "'" if any(c in text for c in " ,:#{}[]'\"") else text


# ----------------------------------------------------------------------------- uploads
def _digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()[:16]


def store_upload(path: str | Path | None, uploads: Path, extensions: Sequence[str], max_mb: float,
                 what: str, max_zip_frames: int = 5000) -> Path:
    """Check an uploaded file (type by its name, size) before any work and keep it under
    `uploads/<content hash>/`, so a config naming it runs again later and the same clip uploaded twice
    is the same path (its fitted atlas is reused). A zip of frames is unpacked into a folder of frames.
    Returns the kept file or folder; UploadError when the upload is refused."""
    if path is None or not str(path):
        raise UploadError(f"nothing uploaded: upload {what}")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in extensions:
        raise UploadError(f"'{path.name}' is not {what} the app accepts (accepted: {', '.join(extensions)})")
    if not path.is_file():
        raise UploadError(f"the upload '{path.name}' is missing on the server: upload it again")
    size_mb = path.stat().st_size / 1e6
    if size_mb > max_mb:
        raise UploadError(f"'{path.name}' is {size_mb:.1f} MB, over the upload limit of {max_mb:g} MB "
                          f"(app.max_upload_mb)")
    folder = uploads / _digest(path)
    folder.mkdir(parents=True, exist_ok=True)
    if suffix == ".zip":
        return _unpack_frames(path, folder / path.stem, max_zip_frames, max_mb)
    kept = folder / path.name
    if not kept.is_file():
        shutil.copyfile(path, kept)
    return kept


def _unpack_frames(path: Path, target: Path, max_frames: int, max_mb: float) -> Path:
    """A zip of frames -> a folder of its images (flat; folders inside the zip are ignored)."""
    if target.is_dir() and any(target.iterdir()):
        return target
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UploadError(f"'{path.name}' is not a readable zip file") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir() and not Path(m.filename).name.startswith(".")
                   and Path(m.filename).suffix.lower() in IMAGE_EXTENSIONS]
        if not members:
            raise UploadError(f"'{path.name}' holds no frames (images: {', '.join(IMAGE_EXTENSIONS)})")
        if len(members) > max_frames:
            raise UploadError(f"'{path.name}' holds {len(members)} frames, over app.max_zip_frames={max_frames}")
        if sum(m.file_size for m in members) / 1e6 > 4 * max_mb:
            raise UploadError(f"'{path.name}' unpacks to more than {4 * max_mb:g} MB")
        names = [Path(m.filename).name for m in members]
        if len(set(names)) != len(names):
            raise UploadError(f"'{path.name}' holds two frames of the same name in different folders")
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for member, name in zip(members, names):
            with archive.open(member) as source, (partial / name).open("wb") as sink:
                shutil.copyfileobj(source, sink)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


# ----------------------------------------------------------------------------- configs
@dataclass
class JobPlan:
    """A job's config sources as a command line would take them: `--config` files, then overrides."""

    schema: type
    configs: list[Path]
    overrides: list[str]
    cfg: Any = None

    def load(self) -> Any:
        """Load (and so check) the config, naming a bad key in one line (ConfigError)."""
        base = base_config(self.schema_kind)
        self.cfg = load_config(self.schema, self.configs or None, self.overrides, base_path=base)
        return self.cfg

    @property
    def schema_kind(self) -> str:
        from ...config import ImageEditConfig

        return "image" if self.schema is ImageEditConfig else "video"

    def command(self, tool: str) -> str:
        """The same job as a command line."""
        parts = [tool] + [f"--config {shlex.quote(str(path))}" for path in self.configs]
        return " ".join(parts + [shlex.quote(entry) for entry in self.overrides])


def example_configs(kind: str) -> dict[str, Path]:
    """The shipped example configs of `configs/<kind>/` by name (base and the recipes left out)."""
    folder = REPO_ROOT / "configs" / kind
    if not folder.is_dir():
        return {}
    skip = {"base", "text2live_reference", "tiny_offline"}
    return {path.stem: path for path in sorted(folder.glob("*.yaml")) if path.stem not in skip}


def reference_recipe(kind: str) -> Path | None:
    path = REPO_ROOT / "configs" / kind / "text2live_reference.yaml"
    return path if path.is_file() else None


def preset_texts(path: Path) -> dict[str, str]:
    """The texts and steps of an example config, as the page's fields show them."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    text = raw.get("text", {}) or {}
    out = {}
    for key in ("src", "comp", "screen", "bootstrap"):
        value = text.get(key, "")
        out[key] = "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value or "")
    out["steps"] = raw.get("steps")
    return out


# ----------------------------------------------------------------------------- running
@dataclass
class Worker:
    """A job in a thread. `target(should_stop)` runs the library call; the stop signal is the
    session's, asked by the training loop after every step. A UserError becomes its one line in
    `error`; any other exception is logged with its traceback and shown as one line too."""

    target: Callable[[Callable[[], bool]], Any]
    stop_event: threading.Event
    result: Any = None
    error: str | None = None
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.perf_counter)

    def start(self) -> Worker:
        self.stop_event.clear()
        self.thread = threading.Thread(target=self._run, name="t2l-app-job", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self.target(self.stop_event.is_set)
        except UserError as error:
            self.error = f"error: {error}"
        except KeyboardInterrupt:
            self.error = "error: interrupted"
        except Exception as error:  # a bug: its traceback goes to the server log, the page gets one line
            logger.error("job failed:\n" + traceback.format_exc())
            self.error = f"error: internal error ({type(error).__name__}: {error}); the server log has the details"

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop_and_wait(self, timeout: float | None = None) -> None:
        """Ask the job to stop and wait for it (one training step, then its checkpoint and outputs), at
        most `timeout` seconds."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def wait(self, seconds: float) -> None:
        if self.thread is not None:
            self.thread.join(seconds)


# ----------------------------------------------------------------------------- reading a run folder
def read_jsonl(path: Path) -> list[dict]:
    """The records of a `metrics.jsonl` being written (a torn last line is skipped)."""
    records = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def latest_snapshot(run_dir: Path | None) -> Path | None:
    if run_dir is None:
        return None
    snapshots = sorted((Path(run_dir) / "snapshots").glob("step_*.png"))
    return snapshots[-1] if snapshots else None


def progress_line(records: list[dict], total: int, key: str = "step", what: str = "step") -> str:
    """`step 40/200 (20 %), 12.3 s, about 48 s left` from a run's metrics records."""
    if not records:
        return f"starting ({what} 0/{total})"
    last = records[-1]
    done, seconds = int(last.get(key, 0)), float(last.get("seconds", 0.0))
    first = records[0]
    steps = done - int(first.get(key, 0)) + 1
    span = seconds - float(first.get("seconds", 0.0))
    rate = span / max(steps - 1, 1) if steps > 1 else seconds / max(done, 1)
    eta = max(total - done, 0) * rate
    loss = next((f", loss {last[name]:.4f}" for name in ("total", "loss") if name in last), "")
    return f"{what} {done}/{total} ({100 * done / max(total, 1):.0f} %), {seconds:.1f} s{loss}, about {eta:.0f} s left"


def loss_rows(records: list[dict], key: str = "step", limit: int = 6) -> list[dict]:
    """Long-format rows (`step`, `loss`, `term`) of a run's loss terms for a line plot."""
    skip = {key, "lr", "seconds", "renders", "iteration", "step", "psnr_db"}
    rows = []
    for record in records:
        terms = [name for name in record if name not in skip and isinstance(record[name], int | float)][:limit]
        rows.extend({"step": record[key], "loss": float(record[name]), "term": name} for name in terms)
    return rows


def zip_folder(folder: Path, downloads: Path) -> Path:
    """The folder as a zip under `downloads` (its checkpoint included, so the zip resumes elsewhere)."""
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / f"{folder.name}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:  # PNGs, mp4s: compressed already
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.endswith((".partial", ".lock")):
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    partial.replace(target)
    return target


# ----------------------------------------------------------------------------- the runs
@dataclass
class RunInfo:
    """A run folder under output_dir, as the Runs tab lists it."""

    path: Path
    kind: str  # image | video | atlas
    steps_done: int
    steps_total: int

    @property
    def finished(self) -> bool:
        return self.steps_done >= self.steps_total

    @property
    def label(self) -> str:
        state = "done" if self.finished else f"stopped, resumable ({self.steps_done}/{self.steps_total})"
        return f"{self.kind}: {state}"


def run_info(folder: Path) -> RunInfo | None:
    """What kind of run a folder holds and how far it got; None when it is no run folder."""
    config = folder / "config.yaml"
    if not config.is_file():
        return None
    try:
        raw = OmegaConf.to_container(OmegaConf.load(config), resolve=False)
    except Exception:  # not a YAML mapping
        return None
    if not isinstance(raw, dict):
        return None
    records = read_jsonl(folder / "metrics.jsonl")
    if "image" in raw:
        kind, total, key = "image", int(raw.get("steps", 0)), "step"
    elif "atlas" in raw and "layer" in raw:
        kind, total, key = "video", int(raw.get("steps", 0)), "step"
    elif "fit" in raw:
        kind, total, key = "atlas", int((raw.get("fit") or {}).get("iterations", 0)), "iteration"
    else:
        return None
    done = max((int(r.get(key, 0)) for r in records), default=0)
    return RunInfo(folder, kind, done, total)


def list_runs(output_dir: Path) -> list[RunInfo]:
    """The run folders under output_dir, newest first: its own folders and a batch's clip folders."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        if not child.is_dir() or child.name in (UPLOADS_FOLDER, DOWNLOADS_FOLDER):
            continue
        info = run_info(child)
        if info is not None:
            found.append(info)
        elif not child.name.startswith("."):  # a batch folder: its clips' runs
            found.extend(info for grandchild in child.iterdir() if grandchild.is_dir()
                         and (info := run_info(grandchild)) is not None)
    return sorted(found, key=lambda info: info.path.stat().st_mtime, reverse=True)


def inside(path: str | Path, root: Path) -> Path:
    """`path` resolved, UploadError unless it lies under `root` (a page names only the server's own
    folders it was allowed)."""
    resolved = Path(path).expanduser().resolve()
    root = Path(root).expanduser().resolve()
    if resolved != root and root not in resolved.parents:
        raise UploadError(f"'{path}' is not under {root}")
    return resolved
