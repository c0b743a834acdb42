"""The web app's page (Gradio): the Image, Video, Batch and Runs tabs, and the named API endpoints
`/edit_image`, `/fit_atlas`, `/edit_video`, `/batch` that scripts call with `gradio_client`.

Every job runs through `jobs.Worker` in a thread that the tab's stop signal ends within one training
step; the event handler is a generator that reads the job's run folder while it runs and yields what
changed (status with ETA, the latest snapshot, the loss curve). All jobs share one queue slot
(`concurrency_id="device"`): one job on the device at a time, the others wait with their position shown.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ...common.errors import UserError
from ...common.media_files import IMAGE_EXTENSIONS
from ..cli import REPO_ROOT, base_config
from .config import AppConfig
from .jobs import (
    CLIP_EXTENSIONS,
    DOWNLOADS_FOLDER,
    UPLOADS_FOLDER,
    JobPlan,
    RunInfo,
    Session,
    UploadError,
    Worker,
    defaults_for,
    example_configs,
    inside,
    keys_of,
    latest_snapshot,
    list_runs,
    loss_rows,
    parse_overrides,
    preset_texts,
    progress_line,
    quote,
    read_jsonl,
    reference_recipe,
    run_info,
    zip_folder,
)

logger = logging.getLogger(__name__)

DEVICE = "device"  # the one concurrency group of every job: one job on the device at a time
IMAGE_OUTPUTS = ("composite.png", "edit_layer.png", "alpha.png", "edit_on_greenscreen.png", "comparison.png")
VIDEO_OUTPUTS = ("edited.mp4", "comparison.mp4", "edit_on_greenscreen.mp4", "edited_atlas.png",
                 "edited_atlas_composite.png", "atlas.png", "summary.json")
ATLAS_PREVIEWS = ("reconstruction.mp4", "alpha.mp4", "atlas_foreground.png", "atlas_background.png", "atlas_grid.mp4",
                  "fit_summary.json")
NONE = "(none)"


def _skip() -> dict:
    return gr.skip()


@dataclass
class Update:
    """What a running or finished job shows: a status line, the latest snapshot, the loss records,
    and once done its run folder and files (or the one-line error)."""

    status: str
    snapshot: Path | None = None
    records: list[dict] = field(default_factory=list)
    run_dir: Path | None = None
    done: bool = False
    error: str | None = None
    files: list[Path] = field(default_factory=list)
    result: Any = None
    key: str = "step"


class WebApp:
    """The app's settings and defaults (fixed at start), its jobs, and the page built from them."""

    def __init__(self, cfg: AppConfig, defaults: Sequence[str] = ()):
        self.cfg = cfg
        defaults = list(defaults)
        self.toy_clip = REPO_ROOT / "data" / "toy_clip"
        if "clip.model" not in keys_of(defaults) and (self.toy_clip / "config.json").is_file():
            defaults.append(f"clip.model={self.toy_clip}")  # offline default: the shipped toy CLIP
        self.defaults = defaults
        values = dict(entry.split("=", 1) for entry in defaults)
        self.output_dir = Path(values.get("output_dir", "runs")).expanduser().resolve()
        self.clip_model = values.get("clip.model", "openai/clip-vit-base-patch32")
        self.device = values.get("device", "auto")
        self.uploads = self.output_dir / UPLOADS_FOLDER
        self.downloads = self.output_dir / DOWNLOADS_FOLDER
        self.allow_dirs = [Path(d).expanduser().resolve() for d in cfg.allow_dirs]
        self._lock = threading.Lock()
        self._running: dict[str, threading.Event] = {}  # session hash -> its job's stop signal

    # ------------------------------------------------------------------ the banner
    def banner(self) -> str:
        from ...common.runs import select_device

        try:
            device = str(select_device(self.device))
        except UserError as error:
            device = f"{self.device} ({error})"
        toy = Path(self.clip_model).resolve() == self.toy_clip.resolve()
        clip = ("the shipped **toy CLIP** (`data/toy_clip`: a few colours and shapes, for trying the app offline)"
                if toy else f"CLIP **`{self.clip_model}`**")
        return (f"**text2live_geo** — text-driven layered editing. Edits use {clip} on **{device}**; runs go to "
                f"`{self.output_dir}`. " + (
                    "For real edits start the app with real weights: `t2l-app clip.model=openai/clip-vit-base-patch32` "
                    "(a hub id, downloaded once) or `clip.model=/path/to/clip` (a local `save_pretrained` folder)."
                    if toy else "") + " One job runs at a time; others wait in the queue with their position shown.")

    # ------------------------------------------------------------------ job plumbing
    def _register(self, request: gr.Request | None, session: Session) -> str | None:
        key = getattr(request, "session_hash", None) if request is not None else None
        if key:
            with self._lock:
                self._running[key] = session.stop_event
        return key

    def _unregister(self, key: str | None) -> None:
        if key:
            with self._lock:
                self._running.pop(key, None)

    def stop_session(self, request: gr.Request) -> None:
        """The tab was closed: its job stops as the Stop button stops it."""
        key = getattr(request, "session_hash", None)
        with self._lock:
            event = self._running.get(key) if key else None
        if event is not None:
            event.set()

    def _follow(self, worker: Worker, run_dir: Path | None, total: int, key: str = "step",
                what: str = "step", folder=None) -> Iterator[Update]:
        """Updates while `worker` runs (read from its run folder every poll_seconds); the generator
        closed early (tab closed, job cancelled) stops the job, which checkpoints."""
        shown = None
        try:
            while worker.alive:
                worker.wait(self.cfg.poll_seconds)
                current = folder() if folder is not None else run_dir
                records = read_jsonl(current / "metrics.jsonl") if current is not None else []
                snapshot = latest_snapshot(current)
                if (len(records), snapshot) != shown:  # only what changed goes to the page
                    shown = (len(records), snapshot)
                    yield Update(progress_line(records, total, key, what), snapshot, records, current, key=key)
        finally:
            if worker.alive:  # closed early: Gradio closes the generator from its event loop, so wait briefly
                worker.stop_and_wait(timeout=5.0)

    def _run(self, session: Session, kind: str, target: Callable[[Callable[[], bool]], Any], run_dir: Path,
             total: int, line: str) -> Iterator[Update]:
        """`target(should_stop)` (an image or video edit, or an atlas fit, `kind`, writing `run_dir`) in a
        worker that the session's Stop ends: the `line`, the progress up to `total` steps or iterations
        (`_follow`), then `_done`'s report."""
        key = "iteration" if kind == "atlas" else "step"
        worker = Worker(target, session.stop_event).start()
        yield Update(line, run_dir=run_dir)
        yield from self._follow(worker, run_dir, total, key, key)
        yield self._done(kind, worker, run_dir, total)

    def _done(self, kind: str, worker: Worker, run_dir: Path, total: int) -> Update:
        """The report of a finished (or stopped, or failed) job of `_run`: its status line, loss records
        and files (an edit's outputs, its config and the run folder's zip; a fit's previews)."""
        if kind == "atlas":
            return Update(worker.error or f"atlas fitted ({run_dir})", done=True, error=worker.error, run_dir=run_dir,
                          files=[run_dir / n for n in ATLAS_PREVIEWS if (run_dir / n).is_file()])
        records = read_jsonl(run_dir / "metrics.jsonl")
        if worker.error:
            return Update(worker.error, done=True, error=worker.error, run_dir=run_dir, records=records)
        steps = worker.result.steps
        state = (f"done: {steps} steps" if steps >= total else
                 f"stopped at step {steps}/{total}: checkpoint written; continue it from the Runs tab")
        if kind == "video":
            state += f"; atlas reconstruction {worker.result.summary.get('reconstruction_psnr_db')} dB"
        outputs = VIDEO_OUTPUTS if kind == "video" else IMAGE_OUTPUTS
        files = [run_dir / name for name in outputs if (run_dir / name).is_file()]
        files += [run_dir / "config.yaml", zip_folder(run_dir, self.downloads)]
        return Update(f"{state} ({run_dir})", latest_snapshot(run_dir), records, run_dir, done=True, files=files,
                      result=worker.result)

    def _edit_run(self, session: Session, plan: JobPlan, run_dir: Path, edit: Callable[..., Any], kind: str,
                  label: str) -> Iterator[Update]:
        """One image or video edit (`edit`: edit_image / edit_video) of a loaded `plan` into `run_dir`, as
        `t2l-<kind>` runs it (`_run`), its first line "<label>: <command>"."""
        target = lambda stop: edit(plan.configs or None, plan.overrides, run_dir=run_dir,  # noqa: E731
                                   base_config=base_config(kind), progress=False, should_stop=stop)
        yield from self._run(session, kind, target, run_dir, plan.cfg.steps,
                             f"{label}: {plan.command(f't2l-{kind}')}")

    def _plan(self, schema: type, configs: Sequence[Path], entries: Sequence[str]) -> JobPlan:
        plan = JobPlan(schema, list(configs), defaults_for(schema, self.defaults) + list(entries))
        plan.load()
        return plan

    # ------------------------------------------------------------------ image
    def image_job(self, session: Session, image: str | None, configs: Sequence[Path], entries: Sequence[str],
                  request: gr.Request | None = None) -> Iterator[Update]:
        """One image edit as `t2l-image` runs it, into a new run folder under output_dir."""
        from ...common.runs import make_run_dir, timestamped
        from ...config import ImageEditConfig
        from ...editing import edit_image

        key = self._register(request, session)
        try:
            kept = self._store(image, IMAGE_EXTENSIONS, "an image")
            plan = self._plan(ImageEditConfig, configs, [f"image={kept}", *entries])
            cfg = plan.cfg
            run_dir = make_run_dir(cfg.output_dir, cfg.run_name or timestamped(kept.stem))
            yield from self._edit_run(session, plan, run_dir, edit_image, "image", "started")
        except UserError as error:
            yield Update(f"error: {error}", done=True, error=f"error: {error}")
        finally:
            self._unregister(key)

    def _store(self, upload: Any, extensions: Sequence[str], what: str) -> Path:
        from .jobs import store_upload

        path = getattr(upload, "name", upload)  # a file object of older clients, or a path
        return store_upload(path, self.uploads, extensions, self.cfg.max_upload_mb, what, self.cfg.max_zip_frames)

    def image_entries(self, src: str, comp: str, screen: str, bootstrap: str, steps, seed, guidance: str,
                      views, size, precision: str, snapshot_every, extra: str) -> list[str]:
        """The page's fields as overrides (an empty field keeps the config's value)."""
        entries = []
        for key, value in (("text.src", src), ("text.comp", comp), ("text.screen", screen),
                           ("text.bootstrap", bootstrap)):
            if value is not None and str(value).strip():
                entries.append(f"{key}={quote(str(value).strip())}")
        for key, value in (("steps", steps), ("seed", seed), ("clip.n_aug", views), ("crops.resize_short", size),
                           ("snapshot_every", snapshot_every)):
            if value not in (None, ""):
                entries.append(f"{key}={int(value)}")
        if guidance and guidance != NONE:
            entries.append(f"loss.guidance={guidance}")
        if precision and precision != NONE:
            entries.append(f"precision={precision}")
        return entries + parse_overrides(extra)

    def image_configs(self, preset: str | None, recipe: str) -> list[Path]:
        configs = []
        if recipe == "reference" and (path := reference_recipe("image")) is not None:
            configs.append(path)
        presets = example_configs("image")
        if preset and preset in presets:
            configs.append(presets[preset])
        return configs

    # ------------------------------------------------------------------ video
    def fit_job(self, session: Session, video: Any, entries: Sequence[str],
                request: gr.Request | None = None) -> Iterator[Update]:
        """Stage 1: the clip's atlas, fitted as `t2l-video` fits one for an edit naming none (cached per
        clip content and fit settings, so every later prompt on the clip reuses it)."""
        from ...config import VideoEditConfig
        from ...editing.video_input import ATLAS_CACHE_FOLDER, fitted_atlas_for_video

        key = self._register(request, session)
        try:
            kept = self._store(video, CLIP_EXTENSIONS, "a clip")
            plan = self._plan(VideoEditConfig, [], [f"video.frames={kept}", *entries])
            cfg = plan.cfg
            cache = Path(cfg.atlas.cache_dir) if cfg.atlas.cache_dir else Path(cfg.output_dir) / ATLAS_CACHE_FOLDER
            started = time.time()

            def newest() -> Path | None:  # the cache entry being fitted (or reused)
                entries = [p for p in cache.glob("*") if p.is_dir() and p.stat().st_mtime >= started - 1]
                return max(entries, key=lambda p: p.stat().st_mtime) if entries else None

            worker = Worker(lambda stop: fitted_atlas_for_video(cfg, progress=False, should_stop=stop),
                            session.stop_event).start()
            yield Update(f"fitting the atlas of {kept.name} ({cfg.fit.iterations} iterations; reused when cached)")
            yield from self._follow(worker, None, cfg.fit.iterations, "iteration", "iteration", folder=newest)
            if worker.error:
                yield Update(worker.error, done=True, error=worker.error)
                return
            folder = Path(worker.result)
            summary = read_jsonl(folder / "metrics.jsonl")
            psnr = _json(folder / "fit_summary.json").get("psnr_db")
            files = [folder / name for name in ATLAS_PREVIEWS if (folder / name).is_file()]
            yield Update(f"atlas ready: {psnr} dB reconstruction PSNR ({folder})", None, summary, folder,
                         done=True, files=files, result=folder, key="iteration")
        except UserError as error:
            yield Update(f"error: {error}", done=True, error=f"error: {error}")
        finally:
            self._unregister(key)

    def video_job(self, session: Session, video: Any, entries: Sequence[str], request: gr.Request | None = None,
                  configs: Sequence[Path] = ()) -> Iterator[Update]:
        """Stage 2 (stage 1 first when the clip has no cached atlas): one video edit as `t2l-video` runs it."""
        from ...common.runs import make_run_dir, timestamped
        from ...common.video_io import video_name
        from ...config import VideoEditConfig
        from ...editing import edit_video

        key = self._register(request, session)
        try:
            kept = self._store(video, CLIP_EXTENSIONS, "a clip")
            plan = self._plan(VideoEditConfig, configs, [f"video.frames={kept}", *entries])
            cfg = plan.cfg
            if not cfg.atlas.checkpoint:  # stage 1, cached: a second prompt on the clip skips it
                for update in self.fit_job(session, video, entries):
                    if update.error:
                        yield update
                        return
                    if not update.done:
                        yield update
                if session.stop_event.is_set():
                    yield Update("stopped during the atlas fit", done=True, error="stopped during the atlas fit")
                    return
            run_dir = make_run_dir(cfg.output_dir, cfg.run_name or timestamped(f"{video_name(kept)}-{cfg.layer}"))
            yield from self._edit_run(session, plan, run_dir, edit_video, "video", "editing")
        except UserError as error:
            yield Update(f"error: {error}", done=True, error=f"error: {error}")
        finally:
            self._unregister(key)

    # ------------------------------------------------------------------ batch
    def batch_job(self, session: Session, files: Sequence[Any] | None, folder: str | None, entries: Sequence[str],
                  request: gr.Request | None = None) -> Iterator[tuple[str, list[dict], Path | None, list[Path]]]:
        """A batch as `t2l-batch` runs it: uploaded clips (kept in one folder) or a server folder under
        an --allow-dir root. Yields (status, report rows, batch folder, files)."""
        from ...common.runs import timestamped
        from ..batch import run_batch

        key = self._register(request, session)
        try:
            entries = list(entries)
            if folder and str(folder).strip():
                if not self.allow_dirs:
                    raise UploadError("no server folder is allowed: start the app with --allow-dir ROOT")
                for root in self.allow_dirs:
                    try:
                        source = inside(folder, root)
                        break
                    except UploadError:
                        continue
                else:
                    raise UploadError(f"'{folder}' is not under an allowed folder "
                                      f"({', '.join(map(str, self.allow_dirs))})")
                if not source.exists():
                    raise UploadError(f"'{folder}' does not exist")
            else:
                files = list(files or [])
                if not files:
                    raise UploadError("no clips uploaded (or give a server folder)")
                if len(files) > self.cfg.max_batch_files:
                    raise UploadError(f"{len(files)} files, over app.max_batch_files={self.cfg.max_batch_files}")
                source = self.uploads / timestamped("batch")
                source.mkdir(parents=True, exist_ok=True)
                for upload in files:
                    kept = self._store(upload, CLIP_EXTENSIONS + IMAGE_EXTENSIONS, "a clip or an image")
                    _place(kept, source / kept.name)
            values = dict(entry.split("=", 1) for entry in self.defaults + entries)
            run_name = values.get("run_name") or (source.name if source.parent == self.uploads
                                                  else timestamped(f"{source.name}-batch"))
            output_dir = Path(values.get("output_dir", self.output_dir)).expanduser().resolve()
            entries = [e for e in self.defaults if e.split("=", 1)[0] != "output_dir"] + entries
            entries += [f"run_name={run_name}", f"output_dir={output_dir}"]
            batch_dir = output_dir / run_name
            bases = {kind: base_config(kind) for kind in ("batch", "video", "image")}
            worker = Worker(lambda stop: run_batch(source, None, entries, base_configs=bases, progress=False),
                            session.stop_event).start()
            yield f"batch of {source} into {batch_dir}", [], batch_dir, []
            while worker.alive:
                worker.wait(max(self.cfg.poll_seconds, 0.5))
                yield "running", _json(batch_dir / "report.json").get("clips", []), batch_dir, []
            if worker.error:
                yield worker.error, _json(batch_dir / "report.json").get("clips", []), batch_dir, []
                return
            result = worker.result
            files = [p for p in (batch_dir / "report.html", batch_dir / "report.json") if p.is_file()]
            yield result.summary, _json(batch_dir / "report.json").get("clips", []), batch_dir, \
                files + [zip_folder(batch_dir, self.downloads)]
        except UserError as error:
            yield f"error: {error}", [], None, []
        finally:
            self._unregister(key)

    # ------------------------------------------------------------------ runs
    def runs(self) -> list[RunInfo]:
        return list_runs(self.output_dir)

    def resume_job(self, session: Session, run: str, more_steps, request: gr.Request | None = None
                   ) -> Iterator[Update]:
        """Continue a run folder under output_dir (`--resume RUN steps=N`) with more steps."""
        key = self._register(request, session)
        try:
            run_dir = inside(run, self.output_dir) if run else None
            info = run_info(run_dir) if run_dir is not None else None
            if info is None:
                raise UploadError(f"'{run}' is no run folder under {self.output_dir}")
            more = int(more_steps or 0)
            if more < 0:
                raise UploadError("more steps must be at least 0")
            total = info.steps_total + (more if info.finished else 0)
            if info.kind == "atlas":
                from atlas.fitting.run import fit_atlas

                entries = [f"fit.iterations={total}"]
                target = lambda stop: fit_atlas(resume=run_dir, overrides=entries, progress=False,  # noqa: E731
                                                should_stop=stop)
                key_name = "iteration"
            else:
                from ...editing import edit_image, edit_video

                edit = edit_image if info.kind == "image" else edit_video
                entries = [f"steps={total}"]
                target = lambda stop: edit(resume=run_dir, overrides=entries, progress=False,  # noqa: E731
                                           should_stop=stop)
                key_name = "step"
            yield from self._run(session, info.kind, target, run_dir, total,
                                 f"continuing {run_dir} from {key_name} {info.steps_done} to {total}")
        except UserError as error:
            yield Update(f"error: {error}", done=True, error=f"error: {error}")
        finally:
            self._unregister(key)


def _place(kept: Path, target: Path) -> None:
    """An upload into a batch's input folder: a hard link (no copy) where the file system allows."""
    import os
    import shutil

    if target.exists():
        return
    if kept.is_dir():
        shutil.copytree(kept, target)
        return
    try:
        os.link(kept, target)
    except OSError:
        shutil.copyfile(kept, target)


def _json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _plot(records: list[dict], key: str = "step") -> pd.DataFrame:
    rows = loss_rows(records, key)
    return pd.DataFrame(rows, columns=["step", "loss", "term"])


def _files(update: Update) -> list[str] | None:
    return [str(p) for p in update.files] or None


def _table(rows: list[dict]) -> pd.DataFrame:
    columns = ["name", "kind", "status", "seconds", "psnr_db", "steps", "error"]
    return pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns)


# ============================================================================ the page
def build_app(cfg: AppConfig | None = None, defaults: Sequence[str] = ()) -> gr.Blocks:
    """The page and its API endpoints; `launch(app, cfg)` serves it."""
    web = WebApp(cfg or AppConfig(), defaults)
    image_presets = list(example_configs("image"))
    demo_image = REPO_ROOT / "data" / "toy_images" / "red_circle.png"
    demo_clip = REPO_ROOT / "data" / "procedural" / "clip.mp4"
    heavy = {"concurrency_id": DEVICE, "concurrency_limit": 1}

    with gr.Blocks(title="text2live_geo") as blocks:
        session = gr.State(Session)
        gr.Markdown(web.banner(), elem_id="banner")
        with gr.Tabs():
            # ---------------------------------------------------------------- Image
            with gr.Tab("Image"):
                with gr.Row():
                    with gr.Column(scale=1):
                        image_in = gr.Image(label="Input image", type="filepath", image_mode=None,
                                            sources=["upload", "clipboard"], elem_id="image-input")
                        preset = gr.Dropdown([NONE] + image_presets, value=NONE, label="Preset (example config)")
                        recipe = gr.Radio(["ours", "reference"], value="ours", label="Recipe")
                        src = gr.Textbox(label="Source text (text.src)", placeholder="what is in the image: horse",
                                         elem_id="image-src")
                        comp = gr.Textbox(label="Composite text (text.comp)",
                                          placeholder="the edited image: golden horse", elem_id="image-comp")
                        screen = gr.Textbox(label="Green-screen text (text.screen)",
                                            placeholder="the edit layer alone: golden horse",
                                            elem_id="image-screen")
                        bootstrap = gr.Textbox(label="Bootstrap text (text.bootstrap, optional)",
                                               placeholder="where to edit: horse", elem_id="image-bootstrap")
                        with gr.Accordion("Advanced", open=False):
                            steps = gr.Number(label="Steps", value=None, precision=0)
                            seed = gr.Number(label="Seed", value=None, precision=0)
                            guidance = gr.Dropdown([NONE, "geodesic", "directional"], value=NONE, label="Guidance")
                            views = gr.Number(label="CLIP views per step (clip.n_aug)", value=None, precision=0)
                            size = gr.Number(label="Short side in px (crops.resize_short)", value=None, precision=0)
                            precision = gr.Dropdown([NONE, "fp32", "bf16", "fp16"], value=NONE, label="Precision")
                            snapshot_every = gr.Number(label="Snapshot every (steps)", value=web.cfg.snapshot_every,
                                                       precision=0)
                            extra = gr.Textbox(label="More key=value overrides",
                                               placeholder="loss.imc=0.5 optim.lr=2e-3")
                        with gr.Row():
                            run_btn = gr.Button("Run", variant="primary", elem_id="image-run")
                            stop_btn = gr.Button("Stop", variant="stop", interactive=False, elem_id="image-stop")
                    with gr.Column(scale=2):
                        status = gr.Markdown("Upload an image, describe the edit, press Run.", elem_id="image-status")
                        snapshot = gr.Image(label="Latest snapshot (input | composite | edit on green)",
                                            interactive=False, elem_id="image-snapshot")
                        plot = gr.LinePlot(x="step", y="loss", color="term", label="Losses", height=220)
                        slider = gr.ImageSlider(label="Before / after", interactive=False)
                        with gr.Row():
                            composite = gr.Image(label="Composite", interactive=False, elem_id="image-composite")
                            edit_layer = gr.Image(label="Edit layer (RGBA)", interactive=False, image_mode="RGBA")
                            alpha = gr.Image(label="Alpha", interactive=False)
                        comparison = gr.Image(label="Comparison", interactive=False)
                        files = gr.File(label="Downloads", file_count="multiple", interactive=False,
                                        elem_id="image-files")
                if demo_image.is_file():
                    gr.Examples([[str(demo_image), "demo_toy"]], inputs=[image_in, preset], label="Demo")

            def fill_preset(name):
                presets = example_configs("image")
                if name not in presets:
                    return _skip(), _skip(), _skip(), _skip(), _skip()
                texts = preset_texts(presets[name])
                return texts["src"], texts["comp"], texts["screen"], texts["bootstrap"], texts["steps"]

            preset.change(fill_preset, preset, [src, comp, screen, bootstrap, steps], api_visibility="private",
                          queue=False)

            image_outputs = [status, snapshot, plot, slider, composite, edit_layer, alpha, comparison, files,
                             run_btn, stop_btn]

            def run_image(state, image, preset_name, recipe_name, src_text, comp_text, screen_text, boot_text,
                          steps_n, seed_n, guidance_name, views_n, size_n, precision_name, every, extra_text,
                          request: gr.Request):
                try:
                    entries = web.image_entries(src_text, comp_text, screen_text, boot_text, steps_n, seed_n,
                                                guidance_name, views_n, size_n, precision_name, every, extra_text)
                except UserError as error:
                    yield (f"error: {error}",) + (_skip(),) * 8 + (gr.update(interactive=True),
                                                                    gr.update(interactive=False))
                    return
                configs = web.image_configs(preset_name, recipe_name)
                for update in web.image_job(state, image, configs, entries, request):
                    yield _image_view(update)

            run_btn.click(
                run_image, [session, image_in, preset, recipe, src, comp, screen, bootstrap, steps, seed, guidance,
                            views, size, precision, snapshot_every, extra], image_outputs,
                api_visibility="private", **heavy)
            stop_btn.click(lambda state: state.stop(), session, None, queue=False, api_name="stop")

            # ---------------------------------------------------------------- Video
            with gr.Tab("Video"):
                with gr.Row():
                    with gr.Column(scale=1):
                        video_in = gr.File(label="Clip (mp4, avi, mov, webm, or a zip of frames)",
                                           file_types=list(CLIP_EXTENSIONS), type="filepath", elem_id="video-input")
                        layer = gr.Radio(["foreground", "background"], value="foreground", label="Layer")
                        v_src = gr.Textbox(label="Source text (text.src)", placeholder="object", elem_id="video-src")
                        v_comp = gr.Textbox(label="Composite text (text.comp)", placeholder="blue object",
                                            elem_id="video-comp")
                        v_screen = gr.Textbox(label="Green-screen text (text.screen)", placeholder="blue object",
                                              elem_id="video-screen")
                        with gr.Accordion("Advanced", open=False):
                            v_steps = gr.Number(label="Edit steps", value=None, precision=0)
                            v_iters = gr.Number(label="Atlas fit iterations (fit.iterations)", value=None, precision=0)
                            v_snap = gr.Number(label="Snapshot every (steps)", value=web.cfg.snapshot_every,
                                               precision=0)
                            v_extra = gr.Textbox(label="More key=value overrides",
                                                 placeholder="video.max_frames=30 video.long_side=256")
                        with gr.Row():
                            fit_btn = gr.Button("1. Fit atlas")
                            edit_btn = gr.Button("2. Edit", variant="primary", elem_id="video-edit")
                            v_stop = gr.Button("Stop", variant="stop", interactive=False)
                    with gr.Column(scale=2):
                        v_status = gr.Markdown("Upload a clip. Fit its atlas once; every prompt on the clip reuses it.",
                                               elem_id="video-status")
                        v_snapshot = gr.Image(label="Latest edited-atlas snapshot", interactive=False)
                        v_plot = gr.LinePlot(x="step", y="loss", color="term", label="Losses / fit terms", height=200)
                        v_video = gr.Video(label="Edited video", interactive=False, elem_id="video-result")
                        v_side = gr.Video(label="Side by side / atlas reconstruction", interactive=False)
                        v_atlas = gr.Image(label="Edited atlas", interactive=False)
                        v_files = gr.File(label="Downloads", file_count="multiple", interactive=False)
                if demo_clip.is_file():
                    gr.Examples([[str(demo_clip), "object", "blue object", "blue object"]],
                                inputs=[video_in, v_src, v_comp, v_screen], label="Demo clip")

            def video_entries(layer_name, s, c, sc, n_steps, iters, every, extra_text):
                entries = [f"layer={layer_name}"] if layer_name else []
                for k, v in (("text.src", s), ("text.comp", c), ("text.screen", sc)):
                    if v and str(v).strip():
                        entries.append(f"{k}={quote(str(v).strip())}")
                for k, v in (("steps", n_steps), ("fit.iterations", iters), ("snapshot_every", every)):
                    if v not in (None, ""):
                        entries.append(f"{k}={int(v)}")
                return entries + parse_overrides(extra_text)

            video_outputs = [v_status, v_snapshot, v_plot, v_video, v_side, v_atlas, v_files, fit_btn, edit_btn,
                             v_stop]

            def run_video(stage, state, clip, *fields, request: gr.Request):
                try:
                    entries = video_entries(*fields)
                except UserError as error:
                    yield (f"error: {error}",) + (_skip(),) * 6 + _buttons(False, 3)
                    return
                job = web.fit_job if stage == "fit" else web.video_job
                for update in job(state, clip, entries, request):
                    yield _video_view(update)

            def run_fit(state, clip, layer_name, s, c, sc, n_steps, iters, every, extra_text, request: gr.Request):
                yield from run_video("fit", state, clip, layer_name, s, c, sc, n_steps, iters, every, extra_text,
                                     request=request)

            def run_edit(state, clip, layer_name, s, c, sc, n_steps, iters, every, extra_text, request: gr.Request):
                yield from run_video("edit", state, clip, layer_name, s, c, sc, n_steps, iters, every, extra_text,
                                     request=request)

            video_inputs = [session, video_in, layer, v_src, v_comp, v_screen, v_steps, v_iters, v_snap, v_extra]
            fit_btn.click(run_fit, video_inputs, video_outputs, api_visibility="private", **heavy)
            edit_btn.click(run_edit, video_inputs, video_outputs, api_visibility="private", **heavy)
            v_stop.click(lambda state: state.stop(), session, None, queue=False, api_visibility="private")

            # ---------------------------------------------------------------- Batch
            with gr.Tab("Batch"), gr.Row():
                with gr.Column(scale=1):
                    b_files = gr.File(label="Clips or images", file_count="multiple", type="filepath",
                                      file_types=list(CLIP_EXTENSIONS + IMAGE_EXTENSIONS))
                    b_folder = gr.Textbox(label="Or a server folder (under an --allow-dir root)",
                                          placeholder=", ".join(map(str, web.allow_dirs)) or
                                          "start the app with --allow-dir ROOT to enable")
                    b_src = gr.Textbox(label="Source text (text.src)")
                    b_comp = gr.Textbox(label="Composite text (text.comp)")
                    b_screen = gr.Textbox(label="Green-screen text (text.screen)")
                    b_extra = gr.Textbox(label="More key=value overrides",
                                         placeholder="steps=300 fit.iterations=500")
                    b_run = gr.Button("Run batch", variant="primary")
                with gr.Column(scale=2):
                    b_status = gr.Markdown("Edit several clips with the same texts and keys.")
                    b_table = gr.Dataframe(label="report.json", interactive=False)
                    b_out = gr.File(label="report.html, report.json, outputs (zip)", file_count="multiple",
                                    interactive=False)

            def run_batch_tab(state, uploads, folder, s, c, sc, extra_text, request: gr.Request):
                try:
                    entries = [f"{k}={quote(v.strip())}" for k, v in
                               (("text.src", s), ("text.comp", c), ("text.screen", sc)) if v and v.strip()]
                    entries += parse_overrides(extra_text)
                except UserError as error:
                    yield f"error: {error}", _skip(), _skip(), gr.update(interactive=True)
                    return
                for message, rows, _, out in web.batch_job(state, uploads, folder, entries, request):
                    done = bool(out) or message.startswith("error")
                    yield message, _table(rows), [str(p) for p in out] or None, gr.update(interactive=done)
                yield _skip(), _skip(), _skip(), gr.update(interactive=True)

            b_run.click(run_batch_tab, [session, b_files, b_folder, b_src, b_comp, b_screen, b_extra],
                        [b_status, b_table, b_out, b_run], api_visibility="private", **heavy)

            # ---------------------------------------------------------------- Runs
            with gr.Tab("Runs"), gr.Row():
                with gr.Column(scale=1):
                    r_list = gr.Dropdown([], label=f"Run folders under {web.output_dir}", allow_custom_value=True)
                    r_refresh = gr.Button("Refresh")
                    r_more = gr.Number(label="More steps (a finished run); a stopped run continues to its steps",
                                       value=0, precision=0)
                    with gr.Row():
                        r_continue = gr.Button("Continue", variant="primary")
                        r_stop = gr.Button("Stop", variant="stop")
                with gr.Column(scale=2):
                    r_status = gr.Markdown("Pick a run folder (those the command lines made included).",
                                           elem_id="runs-status")
                    r_gallery = gr.Gallery(label="Outputs", columns=3, height=320, elem_id="runs-gallery")
                    r_video = gr.Video(label="Video", interactive=False)
                    r_plot = gr.LinePlot(x="step", y="loss", color="term", label="Losses", height=200)
                    r_files = gr.File(label="Downloads", file_count="multiple", interactive=False)

            def refresh():
                runs = web.runs()
                choices = [(f"{info.path.relative_to(web.output_dir)} — {info.label}", str(info.path)) for info in runs]
                return gr.update(choices=choices, value=choices[0][1] if choices else None)

            def open_run(run):
                if not run:
                    return "No run picked.", None, None, None, None
                try:
                    run_dir = inside(run, web.output_dir)
                except UserError as error:
                    return f"error: {error}", None, None, None, None
                info = run_info(run_dir)
                if info is None:
                    return f"error: '{run}' is no run folder", None, None, None, None
                images = sorted(p for p in run_dir.glob("*.png"))
                videos = [run_dir / n for n in ("edited.mp4", "reconstruction.mp4") if (run_dir / n).is_file()]
                key = "iteration" if info.kind == "atlas" else "step"
                files = [str(p) for p in sorted(run_dir.iterdir()) if p.is_file() and p.suffix != ".pt"]
                files.append(str(zip_folder(run_dir, web.downloads)))
                return (f"**{run_dir.name}**: {info.label}", [str(p) for p in images] or None,
                        str(videos[0]) if videos else None, _plot(read_jsonl(run_dir / "metrics.jsonl"), key), files)

            r_refresh.click(refresh, None, r_list, api_visibility="private", queue=False)
            blocks.load(refresh, None, r_list, api_visibility="private", queue=False)
            r_list.change(open_run, r_list, [r_status, r_gallery, r_video, r_plot, r_files], api_visibility="private")

            def continue_run(state, run, more, request: gr.Request):
                for update in web.resume_job(state, run, more, request):
                    images = [str(p) for p in sorted(update.run_dir.glob("*.png"))] if update.done and \
                        update.run_dir else _skip()
                    yield (update.status, images if update.done else
                           ([str(update.snapshot)] if update.snapshot else _skip()),
                           _plot(update.records, update.key) if update.records else _skip(), _files(update))

            r_continue.click(continue_run, [session, r_list, r_more], [r_status, r_gallery, r_plot, r_files],
                             api_name="continue_run", **heavy)
            r_stop.click(lambda state: state.stop(), session, None, queue=False, api_visibility="private")

        # -------------------------------------------------------------------- API endpoints
        with gr.Column(visible=False):
            api_image = gr.File(label="image", type="filepath")
            api_video = gr.File(label="video", type="filepath")
            api_many = gr.File(label="files", file_count="multiple", type="filepath")
            api_overrides = gr.Textbox(label="overrides")
            api_status = gr.Textbox(label="status")
            api_snapshot = gr.Image(label="snapshot", type="filepath")
            api_files = gr.File(label="files", file_count="multiple")
            api_table = gr.JSON(label="report")
            buttons = [gr.Button(name) for name in ("edit_image", "fit_atlas", "edit_video", "batch")]

        def api_edit_image(state, image, overrides, request: gr.Request):
            """An image edit: `image` (file) and `overrides` (key=value ... as on the t2l-image command line).
            Streams (status, latest snapshot, files); the last has the run folder's files."""
            yield from _api_stream(web.image_job(state, image, [], parse_overrides(overrides), request))

        def api_fit_atlas(state, video, overrides, request: gr.Request):
            """Stage 1 of a video edit: the clip's atlas (cached per clip and fit settings)."""
            yield from _api_stream(web.fit_job(state, video, parse_overrides(overrides), request))

        def api_edit_video(state, video, overrides, request: gr.Request):
            """A video edit (its atlas fitted first unless cached or atlas.checkpoint is given)."""
            yield from _api_stream(web.video_job(state, video, parse_overrides(overrides), request))

        def api_batch(state, uploads, overrides, request: gr.Request):
            """A batch of uploaded clips: streams (status, report rows, files)."""
            last = None
            for message, rows, _, out in web.batch_job(state, uploads, None, parse_overrides(overrides), request):
                last = message
                yield message, rows, [str(p) for p in out] or None
            if last is not None and last.startswith("error"):
                raise gr.Error(last, print_exception=False)

        streamed = [api_status, api_snapshot, api_files]
        for button, fn, inputs, outputs in (
                (buttons[0], api_edit_image, [session, api_image, api_overrides], streamed),
                (buttons[1], api_fit_atlas, [session, api_video, api_overrides], streamed),
                (buttons[2], api_edit_video, [session, api_video, api_overrides], streamed),
                (buttons[3], api_batch, [session, api_many, api_overrides], [api_status, api_table, api_files])):
            button.click(fn, inputs, outputs, api_name=button.value, **heavy)

        blocks.unload(web.stop_session)
    blocks.queue(max_size=web.cfg.queue_size, default_concurrency_limit=1)
    blocks.web_app = web  # the settings the launcher needs (allowed paths, output_dir)
    return blocks


def _buttons(running: bool, count: int = 2) -> tuple:
    """Run-type buttons off and Stop on while a job runs, and back."""
    return tuple(gr.update(interactive=not running) for _ in range(count - 1)) + (gr.update(interactive=running),)


def _image_view(update: Update) -> tuple:
    plot = _plot(update.records) if update.records else _skip()
    snapshot = str(update.snapshot) if update.snapshot else _skip()
    if not update.done:
        return (update.status, snapshot, plot) + (_skip(),) * 6 + _buttons(True)
    if update.error:
        return (update.status, _skip(), plot) + (_skip(),) * 6 + _buttons(False)
    run_dir = update.run_dir
    image = lambda name: str(run_dir / name) if (run_dir / name).is_file() else None  # noqa: E731
    return (update.status, snapshot, plot, (image("input.png"), image("composite.png")), image("composite.png"),
            image("edit_layer.png"), image("alpha.png"), image("comparison.png"), _files(update)) + _buttons(False)


def _video_view(update: Update) -> tuple:
    plot = _plot(update.records, update.key) if update.records else _skip()
    snapshot = str(update.snapshot) if update.snapshot else _skip()
    if not update.done:
        return (update.status, snapshot, plot) + (_skip(),) * 4 + _buttons(True, 3)
    if update.error:
        return (update.status, _skip(), plot) + (_skip(),) * 4 + _buttons(False, 3)
    folder = update.run_dir

    def path(name):
        return str(folder / name) if folder is not None and (folder / name).is_file() else None

    if update.key == "iteration":  # the atlas fit
        atlas = path("atlas_foreground.png") or path("atlas_background.png")
        return (update.status, _skip(), plot, None, path("reconstruction.mp4"), atlas, _files(update)) + \
            _buttons(False, 3)
    return (update.status, snapshot, plot, path("edited.mp4"), path("comparison.mp4"),
            path("edited_atlas_composite.png"), _files(update)) + _buttons(False, 3)


def _api_stream(updates: Iterator[Update]) -> Iterator[tuple]:
    """(status, snapshot, files) per update; a failed job raises its one line as the endpoint's error."""
    for update in updates:
        if update.error:
            raise gr.Error(update.error, print_exception=False)
        yield update.status, str(update.snapshot) if update.snapshot else None, _files(update)


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def launch(blocks: gr.Blocks, cfg: AppConfig, **kwargs) -> Any:
    """Serve the page on cfg.host:cfg.port (never a public share link)."""
    web: WebApp = blocks.web_app
    web.uploads.mkdir(parents=True, exist_ok=True)
    # the editors' modules imported once now, not by the first job (its first snapshot comes sooner)
    import atlas.fitting.run  # noqa: F401
    import text2live_geo.editing.image  # noqa: F401
    import text2live_geo.editing.video  # noqa: F401
    allowed = [str(web.output_dir), str(REPO_ROOT / "data")] + [str(d) for d in web.allow_dirs]
    port = cfg.port or _free_port(cfg.host)
    return blocks.launch(server_name=cfg.host, server_port=port, share=False,
                         allowed_paths=allowed, max_file_size=int(cfg.max_upload_mb * 1e6),
                         footer_links=["api", "gradio"], **kwargs)

