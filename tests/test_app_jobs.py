"""The web app's jobs without a page (text2live_geo.apps.web.jobs) and its command line (`t2l-app`):
overrides, upload checks before any work, the run folders the Runs tab lists, the app's settings."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from conftest import tiny_overrides
from text2live_geo.apps.cli.app import app_settings, build_parser, host_warning
from text2live_geo.apps.cli.app import main as app_main
from text2live_geo.apps.web.jobs import (
    CLIP_EXTENSIONS,
    UploadError,
    defaults_for,
    inside,
    list_runs,
    parse_overrides,
    progress_line,
    run_info,
    store_upload,
    zip_folder,
)
from text2live_geo.common.config import ConfigError
from text2live_geo.common.media_files import IMAGE_EXTENSIONS
from text2live_geo.config import ImageEditConfig, VideoEditConfig

ROOT = Path(__file__).resolve().parents[1]


def test_overrides_split_as_a_shell_does_and_a_bad_entry_is_one_line():
    assert parse_overrides(" text.comp='golden horse' steps=3 ") == ["text.comp=golden horse", "steps=3"]
    assert parse_overrides("") == [] and parse_overrides(None) == []
    with pytest.raises(ConfigError, match="'steps' is not key=value"):
        parse_overrides("steps")
    with pytest.raises(ConfigError, match="quoting"):
        parse_overrides("text.src='horse")


def test_job_defaults_go_to_the_configs_that_have_their_keys():
    defaults = ["clip.model=x", "video.max_frames=5", "steps=3", "executor=local", "fit.iterations=9"]
    assert defaults_for(ImageEditConfig, defaults) == ["clip.model=x", "steps=3"]
    assert defaults_for(VideoEditConfig, defaults) == ["clip.model=x", "video.max_frames=5", "steps=3",
                                                       "fit.iterations=9"]


def test_uploads_are_checked_before_any_work_and_kept_by_content(tmp_path):
    image = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), (200, 0, 0)).save(image)
    kept = store_upload(image, tmp_path / "up", IMAGE_EXTENSIONS, 1.0, "an image")
    assert kept.read_bytes() == image.read_bytes() and kept.parent.parent == tmp_path / "up"
    assert store_upload(image, tmp_path / "up", IMAGE_EXTENSIONS, 1.0, "an image") == kept  # same content, same path
    with pytest.raises(UploadError, match=r"'notes.txt' is not an image the app accepts \(accepted: .png"):
        store_upload(tmp_path / "notes.txt", tmp_path / "up", IMAGE_EXTENSIONS, 1.0, "an image")
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2_000_000)
    with pytest.raises(UploadError, match=r"'big.png' is 2.0 MB, over the upload limit of 1 MB \(app.max_upload_mb\)"):
        store_upload(big, tmp_path / "up", IMAGE_EXTENSIONS, 1.0, "an image")
    with pytest.raises(UploadError, match="nothing uploaded: upload an image"):
        store_upload(None, tmp_path / "up", IMAGE_EXTENSIONS, 1.0, "an image")


def test_a_zip_of_frames_becomes_a_folder_of_frames_and_a_bad_zip_is_refused(tmp_path):
    frames = tmp_path / "clip.zip"
    with zipfile.ZipFile(frames, "w") as archive:
        for index in range(3):
            path = tmp_path / f"{index:05d}.png"
            Image.new("RGB", (8, 8), (index * 50, 0, 0)).save(path)
            archive.write(path, f"clip/{index:05d}.png")  # in a folder inside the zip
        archive.writestr("../../escape.png", b"x")  # a hostile name: kept as its base name only
        archive.writestr("readme.txt", "not a frame")
    folder = store_upload(frames, tmp_path / "up", CLIP_EXTENSIONS, 10.0, "a clip")
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00001.png", "00002.png", "escape.png"]
    assert not (tmp_path / "escape.png").exists() and folder.is_relative_to(tmp_path / "up")
    with pytest.raises(UploadError, match="holds 4 frames, over app.max_zip_frames=2"):
        store_upload(frames, tmp_path / "up2", CLIP_EXTENSIONS, 10.0, "a clip", max_zip_frames=2)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("a.txt", "x")
    with pytest.raises(UploadError, match="holds no frames"):
        store_upload(empty, tmp_path / "up", CLIP_EXTENSIONS, 10.0, "a clip")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK not a zip")
    with pytest.raises(UploadError, match="not a readable zip file"):
        store_upload(broken, tmp_path / "up", CLIP_EXTENSIONS, 10.0, "a clip")


def test_a_page_names_only_folders_under_its_roots(tmp_path):
    assert inside(tmp_path / "a" / "b", tmp_path) == (tmp_path / "a" / "b").resolve()
    with pytest.raises(UploadError, match="is not under"):
        inside(tmp_path / ".." / "elsewhere", tmp_path)


def test_progress_line_has_an_eta():
    records = [{"step": step, "seconds": 0.5 * step, "total": 1.0} for step in range(1, 11)]
    assert progress_line(records, 100) == "step 10/100 (10 %), 5.0 s, loss 1.0000, about 45 s left"
    assert progress_line([], 100) == "starting (step 0/100)"


def test_runs_of_the_command_line_are_listed_resumable_until_finished(tiny_clip_dir, image_path, tmp_path):
    from text2live_geo import edit_image

    out = tmp_path / "runs"
    stopped = edit_image(overrides=tiny_overrides(image_path, tiny_clip_dir, out, steps=4, run_name="stopped"),
                         progress=False, should_stop=lambda: True)
    done = edit_image(overrides=tiny_overrides(image_path, tiny_clip_dir, out, steps=2, run_name="done"),
                      progress=False)
    (out / ".uploads").mkdir()
    infos = {info.path.name: info for info in list_runs(out)}
    assert set(infos) == {"stopped", "done"}
    assert (infos["stopped"].kind, infos["stopped"].steps_done, infos["stopped"].steps_total) == ("image", 1, 4)
    assert not infos["stopped"].finished and infos["done"].finished
    assert infos["stopped"].label == "image: stopped, resumable (1/4)"
    assert run_info(tmp_path) is None
    archive = zip_folder(stopped.run_dir, tmp_path / "zips")
    with zipfile.ZipFile(archive) as opened:
        assert {"stopped/config.yaml", "stopped/checkpoint.pt", "stopped/composite.png"} <= set(opened.namelist())
    assert done.steps == 2


def test_app_settings_split_app_keys_from_job_defaults_and_name_a_bad_key():
    parser = build_parser()
    cfg, defaults = app_settings(parser.parse_args(["--port", "8080", "--allow-dir", "/data", "app.max_upload_mb=9",
                                                    "device=cpu", "clip.model=x", "executor=local"]))
    assert (cfg.host, cfg.port, cfg.max_upload_mb, cfg.allow_dirs) == ("127.0.0.1", 8080, 9.0, ["/data"])
    assert defaults == ["device=cpu", "clip.model=x", "executor=local"]
    with pytest.raises(ConfigError, match="'no_such' is no key of the image, video or batch configs"):
        app_settings(parser.parse_args(["no_such=1"]))
    with pytest.raises(ConfigError, match="max_upload"):
        app_settings(parser.parse_args(["app.max_upload=1"]))


def test_bad_settings_are_one_line_and_exit_2(capsys):
    assert app_main(["app.port=notaport"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_only_a_loopback_host_starts_without_a_warning():
    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None and host_warning("::1") is None
    assert "anyone who reaches this address" in host_warning("0.0.0.0")
    assert "no login" in host_warning("myhost.example")


@pytest.mark.slow
def test_t2l_app_starts_offline_on_loopback_with_the_toy_clip_banner(tmp_path):
    """`run_app.py` as `make app` starts it: no weights given, the toy CLIP; the page's banner says so."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, str(ROOT / "run_app.py"), "--port", str(port),
                                f"output_dir={tmp_path / 'runs'}"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        config = None
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            try:
                config = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert config is not None, process.stdout.read() if process.poll() is not None else "no answer"
        assert "toy CLIP" in config and "clip.model=openai/clip-vit-base-patch32" in config
        assert (tmp_path / "runs" / ".uploads").is_dir()
    finally:
        process.terminate()
        process.wait(timeout=30)
