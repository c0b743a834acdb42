"""run_batch / t2l-batch with the local executor: a batch of tiny clips and a corrupt file (every
clip reported, the failure isolated, exit 1 with the summary line), reruns that skip finished
clips and redo changed ones, and a batch killed mid-clip (SIGINT, then SIGKILL) that a rerun
completes with every output intact."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from batch_clips import BROKEN_REASON, check_first_report, make_clips, rows, tiny_settings
from text2live_geo.apps.batch import run_batch

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def _cli(*argv):
    return [sys.executable, str(ROOT / "run_batch.py"), "--quiet", *map(str, argv)]


@pytest.fixture(scope="module")
def first_batch(tmp_path_factory, tiny_clip_dir):
    """The tiny clips, an image and broken.mp4 through the CLI, two workers."""
    folder = tmp_path_factory.mktemp("batch")
    manifest = make_clips(folder, videos=3, image=True, broken=True)
    settings = tiny_settings(tiny_clip_dir, folder / "runs", workers=2)
    result = subprocess.run(_cli(manifest, *settings), cwd=folder, env=ENV, capture_output=True, text=True,
                            timeout=600)
    return folder, manifest, settings, result, folder / "runs" / "clips-batch"


@pytest.mark.slow
def test_every_clip_is_reported_and_one_failure_stops_no_other(first_batch):
    _, _, _, result, batch_dir = first_batch
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"4 of 5 clips done; 1 failed: broken.mp4: {BROKEN_REASON} '")
    check_first_report(batch_dir)


@pytest.mark.slow
def test_a_rerun_skips_finished_clips_and_redoes_changed_ones(first_batch, tiny_clip_dir):
    folder, manifest, settings, _, batch_dir = first_batch
    finished = ("clip0", "clip1", "clip2", "still")
    before = {name: ((batch_dir / name / "log.txt").stat().st_mtime_ns, (batch_dir / name / "done.json").read_text())
              for name in finished}
    result = run_batch(manifest, None, settings, progress=False)
    assert not result.ok and result.summary.startswith("4 of 5 clips done; 1 failed: broken.mp4")
    for name in finished:  # no edit ran again: the logs and markers are untouched
        assert ((batch_dir / name / "log.txt").stat().st_mtime_ns,
                (batch_dir / name / "done.json").read_text()) == before[name], name
        assert rows(batch_dir)[name]["reused"] is True
    assert rows(batch_dir)["broken"]["status"] == "failed"  # retried, still undecodable
    assert not (batch_dir / ".superseded").exists()

    # clip1's settings change: it alone is redone, its earlier outputs moved aside intact
    text = manifest.read_text().replace("name: clip1", "name: clip1\n  text.comp: green circle")
    manifest.write_text(text)
    old_metrics = (batch_dir / "clip1" / "metrics.jsonl").read_text()
    run_batch(manifest, None, settings, progress=False)
    aside = list((batch_dir / ".superseded").iterdir())
    assert [p.name.split("-")[0] for p in aside] == ["clip1"]
    assert (aside[0] / "metrics.jsonl").read_text() == old_metrics and (aside[0] / "edited.mp4").is_file()
    assert list(OmegaConf.load(batch_dir / "clip1" / "config.yaml").text.comp) == ["green circle"]
    assert {name: row["reused"] for name, row in rows(batch_dir).items() if row["status"] == "done"} == \
        {"clip0": True, "clip1": False, "clip2": True, "still": True}


def _wait_for(condition, timeout=240.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _worker_pid(run_dir: Path) -> int:
    log = (run_dir / "log.txt").read_text()
    return int(log.split(", process ")[-1].split()[0])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as handle:  # a zombie (not yet reaped) is gone too
        return handle.read().split(") ")[-1].startswith("Z")


@pytest.mark.slow
def test_a_batch_killed_mid_clip_then_rerun_ends_with_every_clip_done(tmp_path, tiny_clip_dir):
    manifest = make_clips(tmp_path, videos=2, image=False, broken=False)
    settings = tiny_settings(tiny_clip_dir, tmp_path / "runs", steps=6, checkpoint_every=2, workers=1)
    batch_dir = tmp_path / "runs" / "clips-batch"
    checkpoint = batch_dir / "clip0" / "checkpoint.pt"

    # SIGINT once clip0 has a checkpoint: exit 130, the report says what is left
    process = subprocess.Popen(_cli(manifest, *settings), cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(checkpoint.exists, what="clip0's first checkpoint")
        worker = _worker_pid(batch_dir / "clip0")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "interrupted: rerun the same command to continue" in err
        _wait_for(lambda: _gone(worker), timeout=10, what="the worker to end")
        assert rows(batch_dir)["clip0"]["status"] in ("pending", "done")
        assert not (batch_dir / "clip0" / "done.json").exists() or rows(batch_dir)["clip0"]["status"] == "done"

        # SIGKILL of the batch process alone, once clip1 has a checkpoint: its worker ends with it
        process = subprocess.Popen(_cli(manifest, *settings), cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_for((batch_dir / "clip1" / "checkpoint.pt").exists, what="clip1's first checkpoint")
        worker = _worker_pid(batch_dir / "clip1")
        process.kill()
        process.wait(timeout=30)
        _wait_for(lambda: _gone(worker), timeout=10, what="the orphaned worker to end")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    result = run_batch(manifest, None, settings, progress=False)
    assert result.ok, result.summary
    assert not (batch_dir / ".superseded").exists()  # resumed in place, nothing redone from scratch
    for name in ("clip0", "clip1"):
        run_dir = batch_dir / name
        steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3, 4, 5, 6], name  # one uninterrupted run
        assert json.loads((run_dir / "summary.json").read_text())["steps"] == 6
        assert len(list((run_dir / "frames").glob("*.png"))) == 6 and (run_dir / "edited.mp4").is_file()
        assert not list(run_dir.glob(".*.tmp.mp4"))
    assert "resuming its checkpoint" in (batch_dir / "clip1" / "log.txt").read_text()


@pytest.mark.slow
def test_a_folder_of_raw_clips_gets_its_atlases_fitted_then_edited(tiny_procedural_clip, tiny_clip_dir, tmp_path):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    shutil.copy(tiny_procedural_clip / "clip.mp4", shoot / "pan.mp4")
    (shoot / "broken.mp4").write_bytes(b"\x00garbage" * 50)
    settings = tiny_settings(tiny_clip_dir, tmp_path / "runs", workers=1, **{
        "fit.iterations": 6, "fit.samples": 1024, "fit.flow_preset": "ultrafast",
        "atlas.alpha_threshold": 0.5})  # a fit of a few iterations has no alpha near 1 yet
    result = run_batch(shoot, None, settings, progress=False)
    batch_dir = tmp_path / "runs" / "shoot-batch"
    assert result.summary.startswith(f"1 of 2 clips done; 1 failed: broken.mp4: {BROKEN_REASON}")
    pan = rows(batch_dir)["pan"]
    assert pan["status"] == "done" and pan["psnr_db"] > 15 and (batch_dir / "pan" / "edited.mp4").is_file()
    (cache,) = (batch_dir / ".atlas_cache").iterdir()  # fitted once, in the batch folder's cache
    assert json.loads((batch_dir / "pan" / "summary.json").read_text())["atlas"] == str(cache)
    assert "fitting one to" in (batch_dir / "pan" / "log.txt").read_text()  # the fit's progress is in the log
