"""A batch killed at random moments (SIGKILL of the batch process and its workers, as a crash or a
power cut would), rerun after each kill: at the end every clip is done exactly once, every
`metrics.jsonl` reads as one uninterrupted run, and nothing a clip had finished before a kill is
lost or rewritten."""
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batch_clips import rows, tiny_settings
from text2live_geo.apps.batch import run_batch

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
KILLS = 10
STEPS = 16


def _finished_outputs(batch_dir: Path) -> dict[str, str]:
    """sha256 of every file of every clip that has its done marker (log.txt, which a rerun appends
    to, left out)."""
    hashes = {}
    for done in batch_dir.glob("*/done.json"):
        for path in sorted(done.parent.rglob("*")):
            if path.is_file() and path.name != "log.txt":
                hashes[str(path.relative_to(batch_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


@pytest.mark.slow
def test_a_batch_killed_ten_times_at_random_moments_ends_with_every_clip_done_once(tmp_path, tiny_clip_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]
    for index, colour in enumerate(colours):
        array = np.full((40, 48, 3), 128, np.uint8)
        array[10:30, 12:30] = colour
        Image.fromarray(array).save(folder / f"clip{index}.png")
    settings = tiny_settings(tiny_clip_dir, tmp_path / "runs", workers=1, steps=STEPS, checkpoint_every=1,
                             **{"crops.resize_short": 40})
    batch_dir = tmp_path / "runs" / "in-batch"
    command = [sys.executable, str(ROOT / "run_batch.py"), "--quiet", str(folder), *settings]
    rng = random.Random(24)
    kept: dict[str, str] = {}
    killed = 0
    for _ in range(KILLS):
        process = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            # a random moment once the edits are under way (a worker's start-up alone takes seconds)
            started = time.monotonic()
            while process.poll() is None and time.monotonic() - started < 120 and not any(
                    path.stat().st_mtime > time.time() - (time.monotonic() - started)
                    for path in batch_dir.glob("*/metrics.jsonl")):
                time.sleep(0.05)
            process.wait(timeout=rng.uniform(0.0, 1.5))
        except subprocess.TimeoutExpired:
            pass
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the batch and its worker at once
                killed += 1
            process.wait(timeout=30)
        time.sleep(0.2)  # let the killed worker's files settle (it is gone: its group was killed)
        now = _finished_outputs(batch_dir) if batch_dir.exists() else {}
        assert {key: now.get(key) for key in kept} == kept, "a finished clip's output changed after a kill"
        kept = now

    assert killed >= KILLS // 2, f"only {killed} of {KILLS} runs were still going when killed"
    result = run_batch(folder, None, settings, progress=False)
    assert result.ok, result.summary
    logs = "".join((batch_dir / f"clip{index}" / "log.txt").read_text() for index in range(len(colours)))
    assert "resuming its checkpoint" in logs  # some kill hit a clip mid-edit, and its rerun resumed it
    final = _finished_outputs(batch_dir)
    assert {key: final.get(key) for key in kept} == kept, "the final run changed a finished clip's output"
    report_rows = rows(batch_dir)
    assert sorted(report_rows) == [f"clip{index}" for index in range(len(colours))]
    for name in report_rows:
        run_dir = batch_dir / name
        steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(1, STEPS + 1)), name  # one uninterrupted run
        done = json.loads((run_dir / "done.json").read_text())
        assert done["outcome"]["status"] == "done" and done["outcome"]["steps"] == STEPS
        assert (run_dir / "composite.png").is_file() and (run_dir / "edit_layer.png").is_file()
        assert not list(run_dir.glob(".*.tmp*")), name  # no temporary file left behind
    # a clip whose unfinished run had no checkpoint yet is moved aside, never deleted: nothing was lost
    aside = batch_dir / ".superseded"
    if aside.exists():
        assert all(any(folder.iterdir()) for folder in aside.iterdir())
