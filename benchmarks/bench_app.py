"""The web app's cost: its wall-time overhead on an edit against the same edit from the command line,
and the time from Run to the first snapshot on the page.

Every path runs in its own process, on the same config (the offline demo edit,
`configs/image/demo_toy.yaml`, with --steps steps and the app's snapshot cadence, so they do the same
work). The app: `run_app.py` serving on 127.0.0.1, timed from submitting `/edit_image` with
`gradio_client` (upload, queue, streamed snapshots) to the final files (the run folder's zip included),
after one warm-up job. The command line: `t2l-image`'s main timed in a warm process (imported, one
1-step warm-up edit first), the fair match of a server that is already running (`overhead`); and the
`run_image.py` command from start to exit, interpreter start and imports included (`overhead_vs_command`).
The runs alternate (cli, app, cli, app, ...) so a change in machine load hits both; each overhead is
the median app time over the median CLI time, minus one. `training_seconds` (each run's own clock in
`metrics.jsonl`) shows how much of a difference is the machine's load on the steps themselves.

Time to first snapshot: from submitting the job to the first streamed update holding a snapshot
(gradio_client), and, with Chromium present, from clicking Run in a headless browser to the snapshot
image shown on the page (then Stop).

  python benchmarks/bench_app.py                       # demo edit, 40 steps, 2 rounds, browser if present
  python benchmarks/bench_app.py --steps 2 --repeats 1 --no-browser --clip-folder /tmp/tiny --set generator.channels=8
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "image" / "demo_toy.yaml"
CHROMIUM = Path("/usr/bin/chromium")


def demo_dotlist(clip_folder: str | None, sets: list[str], steps: int, snapshot_every: int) -> tuple[Path, list[str]]:
    """The demo config as key=value entries (paths made absolute), with the run's own settings on top."""
    from omegaconf import OmegaConf

    from text2live_geo.common.config import flatten_mapping

    entries = flatten_mapping(OmegaConf.to_container(OmegaConf.load(DEMO)))
    image = ROOT / entries.pop("image")
    entries.pop("run_name", None)
    entries["clip.model"] = clip_folder or str(ROOT / entries["clip.model"])
    entries.update(steps=steps, snapshot_every=snapshot_every, device="cpu", checkpoint_every=0)
    for entry in sets:
        key, value = entry.split("=", 1)
        entries[key] = value

    def quoted(value):
        text = str(value)
        return f"'{text}'" if " " in text else text

    return image, [f"{key}={quoted(value)}" for key, value in entries.items()]


def first_snapshot_in_browser(url: str, image: Path, texts: dict[str, str], timeout_s: float) -> float | None:
    """Seconds from clicking Run to the snapshot image on the page (headless Chromium), then Stop."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(url)
        page.locator("#image-input input[type=file]").set_input_files(str(image))
        expect(page.locator("#image-input img")).to_be_visible()
        for key, value in texts.items():
            page.locator(f"#image-{key} textarea").fill(value)
        start = time.perf_counter()
        page.locator("#image-run").click()
        expect(page.locator("#image-snapshot img")).to_be_visible(timeout=timeout_s * 1000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=page.locator("#image-snapshot img").element_handle())
        seconds = time.perf_counter() - start
        page.locator("#image-stop").click()
        expect(page.locator("#image-status")).to_contain_text("stopped", timeout=timeout_s * 1000)
        browser.close()
    return seconds


def timed_cli(argv: list[str]) -> None:
    """Child process: import, one 1-step warm-up edit, then the timed edit through `t2l-image`'s main;
    prints the seconds as JSON (a warm process running the command line's code, as the app's server is)."""
    start = time.perf_counter()
    import torch

    from text2live_geo.apps.cli.image import main as image_main

    torch.set_num_threads(1)
    imported = time.perf_counter() - start
    warm_dir = argv.pop()
    assert image_main(["--quiet", *argv, "steps=1", f"output_dir={warm_dir}"]) == 0
    start = time.perf_counter()
    assert image_main(["--quiet", *argv]) == 0
    print(json.dumps({"import_seconds": imported, "edit_seconds": time.perf_counter() - start}))


def start_server(port: int, defaults: list[str], env: dict) -> subprocess.Popen:
    """`run_app.py` in its own process (as `make app` starts it); returns once it answers."""
    process = subprocess.Popen([sys.executable, str(ROOT / "run_app.py"), "--port", str(port), *defaults],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2)
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("the app did not start") from None
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the app did not answer in 300 s")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--timed-cli":
        timed_cli(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps of each edit (the demo's own: 200)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of (cli, app)")
    parser.add_argument("--snapshot-every", type=int, default=None, help="default: the app's app.snapshot_every")
    parser.add_argument("--clip-folder", help="another CLIP than the shipped toy one (the tests: a tiny one)")
    parser.add_argument("--set", action="append", default=[], metavar="key=value", help="more config entries")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless-browser measurement")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "app.json"))
    args = parser.parse_args(argv)

    from gradio_client import Client, handle_file

    from text2live_geo.apps.web.config import AppConfig

    snapshot_every = args.snapshot_every or AppConfig().snapshot_every
    image, entries = demo_dotlist(args.clip_folder, args.set, args.steps, snapshot_every)
    texts = {key.split(".")[1]: value.strip("'") for key, value in (e.split("=", 1) for e in entries)
             if key in ("text.src", "text.comp", "text.screen", "text.bootstrap")}
    work = Path(tempfile.mkdtemp(prefix="bench_app_"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(work / "gradio")}
    load_before = os.getloadavg()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_defaults = [e for e in entries if not e.startswith(("text.", "steps=", "snapshot_every="))]
    # the page's edit (the browser measurement, stopped after its first snapshot) keeps the demo's 200 steps
    server = start_server(port, [*app_defaults, f"output_dir={work / 'app'}", "steps=200"], env)
    url = f"http://127.0.0.1:{port}/"
    client = Client(url, verbose=False)
    overrides = " ".join(entries)

    def cli_run() -> tuple[float, float]:
        """(seconds of the `t2l-image` command from start to exit, seconds of its edit in a warm process)"""
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "run_image.py"), "--quiet", f"image={image}", *entries,
                        f"output_dir={work / 'cli_cold'}"], env=env, check=True, capture_output=True)
        cold = time.perf_counter() - start
        result = subprocess.run([sys.executable, __file__, "--timed-cli", f"image={image}", *entries,
                                 f"output_dir={work / 'cli'}", str(work / "cli_warm")],
                                env=env, check=True, capture_output=True, text=True)
        return cold, json.loads(result.stdout.strip().splitlines()[-1])["edit_seconds"]

    def app_run() -> tuple[float, float | None]:
        start = time.perf_counter()
        job = client.submit(handle_file(str(image)), overrides, api_name="/edit_image")
        first = None
        for _status, snapshot, files in job:
            if first is None and snapshot is not None and files is None:
                first = time.perf_counter() - start
        final = job.outputs()[-1][0]
        assert final.startswith("done:"), final
        return time.perf_counter() - start, first

    client.submit(handle_file(str(image)), overrides + " steps=1", api_name="/edit_image").result()  # warm-up
    cold_seconds, cli_seconds, app_seconds, firsts = [], [], [], []
    try:
        for _ in range(args.repeats):
            cold, warm = cli_run()
            cold_seconds.append(cold)
            cli_seconds.append(warm)
            seconds, first = app_run()
            app_seconds.append(seconds)
            firsts.append(first)
        browser_first = None
        if not args.no_browser and CHROMIUM.is_file():
            browser_first = first_snapshot_in_browser(url, image, texts, timeout_s=120)
    finally:
        server.terminate()
        server.wait(timeout=60)
    load_after = os.getloadavg()
    # each timed run's training seconds (its own clock in metrics.jsonl); the app's warm-up job and the
    # browser's stopped job are left out (they did not run --steps steps)
    train = {kind: [record["seconds"] for path in sorted((work / kind).glob("*/metrics.jsonl"))
                    if (record := json.loads(path.read_text().splitlines()[-1]))["step"] == args.steps]
             for kind in ("cli", "app")}
    # what each path spends outside the training steps (set-up, CLIP load, outputs; the app's upload,
    # queue, polling, zip and transfers too): the overhead without the steps' own speed, which the machine's
    # load and the thread the steps run in move by more than the app's costs
    outside = {kind: [wall - trained for wall, trained in zip(walls, train[kind])]
               for kind, walls in (("cli", cli_seconds), ("app", app_seconds))}

    overhead = statistics.median(app_seconds) / statistics.median(cli_seconds) - 1
    results = {
        "benchmark": "web app overhead and time to first snapshot (benchmarks/bench_app.py)",
        "command": "python benchmarks/bench_app.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"config": str(DEMO.relative_to(ROOT)), "steps": args.steps, "snapshot_every": snapshot_every,
                     "repeats": args.repeats, "clip": args.clip_folder or "data/toy_clip", "set": args.set,
                     "device": "cpu", "torch_threads": 1},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "note": "shared machine: other sessions run beside this one; compare the ratio of one run"},
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
        "cli_seconds": [round(x, 3) for x in cli_seconds], "app_seconds": [round(x, 3) for x in app_seconds],
        "cli_command_seconds": [round(x, 3) for x in cold_seconds],
        "training_seconds": {kind: [round(x, 3) for x in values] for kind, values in train.items()},
        "overhead": round(overhead, 4), "overhead_target": 0.05,
        "overhead_vs_command": round(statistics.median(app_seconds) / statistics.median(cold_seconds) - 1, 4),
        "seconds_outside_training": {kind: [round(x, 3) for x in values] for kind, values in outside.items()},
        "overhead_outside_training": round((statistics.median(outside["app"]) - statistics.median(outside["cli"]))
                                           / statistics.median(cli_seconds), 4),
        "first_snapshot_client_seconds": [None if x is None else round(x, 3) for x in firsts],
        "first_snapshot_browser_seconds": None if browser_first is None else round(browser_first, 3),
        "first_snapshot_target_seconds": 10.0,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"t2l-image command {statistics.median(cold_seconds):7.2f} s (start to exit; median of "
          f"{len(cold_seconds)}: {', '.join(f'{x:.2f}' for x in cold_seconds)})")
    print(f"cli  {statistics.median(cli_seconds):7.2f} s (t2l-image's main in a warm process; median of "
          f"{len(cli_seconds)}: {', '.join(f'{x:.2f}' for x in cli_seconds)})")
    print(f"app  {statistics.median(app_seconds):7.2f} s (/edit_image, submit to final files; median of "
          f"{len(app_seconds)}: "
          f"{', '.join(f'{x:.2f}' for x in app_seconds)})")
    shown = [f"{x:.2f}" for x in firsts if x is not None]
    print(f"first snapshot (gradio_client): {', '.join(shown) or 'none'} s; in the browser: "
          + (f"{browser_first:.2f} s" if browser_first is not None else "not measured"))
    print(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"outside the training steps: cli {statistics.median(outside['cli']):.2f} s, app "
          f"{statistics.median(outside['app']):.2f} s (the app's extra: "
          f"{results['overhead_outside_training'] * 100:.1f} % of the cli's wall time)")
    print(f"app_overhead: {overhead * 100:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
