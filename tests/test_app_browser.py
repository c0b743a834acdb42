"""The web app in a real browser: Playwright drives the operating system's Chromium headless (no browser
download: the set-up installs the distribution's `chromium` package when it is missing and this runs as
root; otherwise the test skips, saying why). It uploads an image, types the texts, clicks Run, waits
for the result, downloads the composite and saves a screenshot."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
pytest.importorskip("playwright")

CHROMIUM = Path("/usr/bin/chromium")
#: set to a path to keep the screenshot (docs/app_screenshot.png is made this way)
SCREENSHOT_ENV = "T2L_APP_SCREENSHOT"


def system_chromium() -> str:
    """The OS's Chromium, installed with apt-get when missing and this process may; else a skip."""
    if CHROMIUM.is_file():
        return str(CHROMIUM)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get: "
                    "apt-get install -y chromium)")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ,
                                                                              "DEBIAN_FRONTEND": "noninteractive"})
        if result.returncode != 0:
            pytest.skip(f"{' '.join(command)} failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    if not CHROMIUM.is_file():
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} is missing")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments, pointed at the OS's Chromium."""
    return {**browser_type_launch_args, "executable_path": system_chromium(), "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}


@pytest.fixture(scope="module")
def app_url(tiny_clip_dir, tmp_path_factory):
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio_tmp_browser"))
    from text2live_geo.apps.web.config import AppConfig
    from text2live_geo.apps.web.ui import build_app, launch

    out = tmp_path_factory.mktemp("browser_runs")
    defaults = [f"clip.model={tiny_clip_dir}", f"output_dir={out}", "generator.num_scales=3", "generator.channels=8",
                "clip.n_aug=4", "device=cpu", "steps=8", "fit.iterations=12", "fit.samples=1024", "fit.eval_every=4",
                "fit.flow_preset=ultrafast", "atlas.alpha_threshold=0.5"]
    cfg = AppConfig(port=0, poll_seconds=0.1, snapshot_every=2)
    blocks = build_app(cfg, defaults)
    _, url, _ = launch(blocks, cfg, prevent_thread_lock=True, quiet=True)
    yield url
    blocks.close()


def drive_image_edit(page, url: str, image: Path, texts: dict[str, str], screenshot: Path, download_to: Path,
                     timeout_ms: int = 180_000) -> Path:
    """Upload, type, Run, wait for the result, download the composite, take a screenshot; returns the
    downloaded file. (The docs' screenshot is made with this too.)"""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 1500})
    page.goto(url)
    expect(page.locator("#banner")).to_contain_text("CLIP")
    page.locator("#image-input input[type=file]").set_input_files(str(image))
    expect(page.locator("#image-input img")).to_be_visible()
    for key, value in texts.items():
        page.locator(f"#image-{key} textarea").fill(value)
    page.locator("#image-run").click()
    status = page.locator("#image-status")
    expect(status).to_contain_text("step", timeout=timeout_ms)  # progress shows while it runs
    expect(status).to_contain_text("done:", timeout=timeout_ms)
    composite = page.locator("#image-composite img")
    expect(composite).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=composite.element_handle())
    link = page.locator("#image-files a[download='composite.png']")
    with page.expect_download() as download:
        link.click()
    path = download_to / "composite.png"
    download.value.save_as(path)
    page.screenshot(path=str(screenshot), full_page=True)
    return path


def test_upload_type_run_download_in_chromium(page, app_url, image_path, tmp_path):
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "app.png")
    downloaded = drive_image_edit(page, app_url, image_path,
                                  {"src": "red square", "comp": "blue square", "screen": "blue square"},
                                  shot, tmp_path)
    composite = np.asarray(Image.open(downloaded))
    assert composite.shape[:2] == np.asarray(Image.open(image_path)).shape[:2]  # the edit at the input's size
    assert shot.is_file() and Image.open(shot).size[0] >= 1000


@pytest.mark.slow
def test_runs_tab_opens_the_newest_run_and_the_video_tab_plays_an_edit(page, app_url, tiny_procedural_clip):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 1400})
    page.goto(app_url)
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator("#runs-status")).to_contain_text("image: done", timeout=60_000)  # the edit above
    expect(page.locator("#runs-gallery img").first).to_be_visible()

    page.get_by_role("tab", name="Video").click()
    page.locator("#video-input input[type=file]").set_input_files(str(tiny_procedural_clip / "clip.mp4"))
    for key, value in {"src": "circle", "comp": "blue circle", "screen": "blue circle"}.items():
        page.locator(f"#video-{key} textarea").fill(value)
    page.locator("#video-edit").click()
    status = page.locator("#video-status")
    expect(status).to_contain_text("iteration", timeout=120_000)  # stage 1: the atlas fit
    expect(status).to_contain_text("done: 8 steps", timeout=300_000)  # stage 2: the edit
    expect(page.locator("#video-result video")).to_have_attribute("src", re.compile(r"edited\.mp4"))
