"""`t2l-app`: the web app, served on this machine (thin shell over text2live_geo.apps.web).

Examples:
  t2l-app                                   # http://127.0.0.1:7860, the shipped toy CLIP, CPU or GPU
  t2l-app clip.model=openai/clip-vit-base-patch32 device=cuda output_dir=~/edits
  t2l-app --port 8080 --allow-dir /data/shoots app.max_upload_mb=2000
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ...common.config import ConfigError, load_config
from . import run_cli

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="The web app: edit an image, a clip or a folder of clips in the browser (Image, Video, Batch "
                    "and Runs tabs), with live snapshots, Stop, resumable runs and downloads; named API endpoints "
                    "/edit_image, /fit_atlas, /edit_video, /batch for gradio_client. Serves on this machine only "
                    "unless --host says otherwise (the app has no login: do not expose it).",
        epilog="key=value: defaults for every job, with the keys of t2l-image / t2l-video / t2l-batch (clip.model, "
               "device, output_dir, steps, ...; a key applies to the jobs whose config has it). app.<key>=value: "
               "the app's own settings (app.max_upload_mb, app.max_zip_frames, app.max_batch_files, "
               "app.queue_size, app.poll_seconds, app.snapshot_every). Without clip.model the app uses the "
               "shipped toy CLIP (data/toy_clip) so it runs offline. See docs/app.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, help="port (default 7860; 0: a free one)")
    parser.add_argument("--allow-dir", action="append", default=[], metavar="ROOT",
                        help="a server folder the Batch tab may read clips from (repeatable)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="job defaults and app.* settings")
    return parser


def app_settings(args: argparse.Namespace):
    """(AppConfig, job defaults) from the parsed arguments; ConfigError names a bad key."""
    from ...config import ImageEditConfig, VideoEditConfig
    from ..batch.config import BatchConfig
    from ..batch.settings import leaf_keys
    from ..web.config import AppConfig

    app_entries, defaults = [], []
    for entry in args.overrides:
        if "=" not in entry:
            raise ConfigError(f"'{entry}' is not key=value")
        (app_entries if entry.startswith("app.") else defaults).append(entry.removeprefix("app.")
                                                                      if entry.startswith("app.") else entry)
    if args.host is not None:
        app_entries.append(f"host={args.host}")
    if args.port is not None:
        app_entries.append(f"port={args.port}")
    cfg = load_config(AppConfig, None, app_entries)
    cfg.allow_dirs = list(cfg.allow_dirs) + list(args.allow_dir)
    known = set().union(*(leaf_keys(schema) for schema in (ImageEditConfig, VideoEditConfig, BatchConfig)))
    for entry in defaults:
        key = entry.split("=", 1)[0]
        if key not in known and not any(k.startswith(key + ".") for k in known):
            raise ConfigError(f"'{key}' is no key of the image, video or batch configs (app settings: app.{key})")
    return cfg, defaults


def host_warning(host: str) -> str | None:
    """The warning for a host other machines may reach (None for a loopback address)."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        loopback = False
    if loopback:
        return None
    return (f"warning: serving on {host}: anyone who reaches this address can run jobs and read the runs "
            f"(the app has no login); the default 127.0.0.1 serves this machine only")


def serve(args: argparse.Namespace) -> None:
    cfg, defaults = app_settings(args)
    warning = host_warning(cfg.host)
    if warning:
        print(warning, file=sys.stderr)
    # Gradio's copies of uploads and outputs: under output_dir, not /tmp (delete .uploads/ to clean up)
    output_dir = dict(entry.split("=", 1) for entry in defaults).get("output_dir", "runs")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(output_dir).expanduser().resolve() / ".uploads" / "gradio"))
    try:
        from ..web.ui import build_app, launch
    except ImportError as error:
        raise ConfigError(f"the web app needs Gradio ({error}): pip install 'text2live_geo[app]'") from None
    launch(build_app(cfg, defaults), cfg)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `t2l-app` and run_app.py; returns the exit status."""
    return run_cli(serve, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
