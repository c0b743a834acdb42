"""text2live_geo.apps.batch.worker: what a rerun does with a clip's folder (reuse when finished with the
same settings, resume a checkpoint, continue an empty attempt, else move it aside intact), the
one-line reasons of failures, and the clip's log."""
import logging
import os

import pytest

from text2live_geo.apps.batch.jobs import ClipJob
from text2live_geo.apps.batch.worker import _reason, clip_log, prepare_folder, read_done, write_json_atomic
from text2live_geo.common.runs import RunError


def _job(tmp_path, settings_hash="h1"):
    return ClipJob(name="swan", label="swan.mp4", source="/clips/swan.mp4", kind="video", settings_yaml="steps: 1\n",
                   settings_hash=settings_hash, run_dir=str(tmp_path / "b" / "swan"))


def _folder(tmp_path, files, settings_hash="h1"):
    folder = tmp_path / "b" / "swan"
    folder.mkdir(parents=True)
    write_json_atomic(folder / "batch_settings.json", {"settings_hash": settings_hash})
    for name in files:
        (folder / name).write_text(name)
    return folder


def test_a_new_clip_runs(tmp_path):
    assert prepare_folder(_job(tmp_path)) == ("run", None)


def test_an_unfinished_run_with_a_checkpoint_and_the_same_settings_resumes(tmp_path):
    _folder(tmp_path, ["config.yaml", "checkpoint.pt", "metrics.jsonl", "log.txt"])
    assert prepare_folder(_job(tmp_path)) == ("resume", None)


def test_an_attempt_that_wrote_nothing_of_an_edit_continues_in_place(tmp_path):
    folder = _folder(tmp_path, ["log.txt"])
    assert prepare_folder(_job(tmp_path)) == ("run", None) and (folder / "log.txt").is_file()


@pytest.mark.parametrize("files, settings_hash, done", [
    (["config.yaml", "checkpoint.pt", "metrics.jsonl"], "h0", False),  # other settings
    (["config.yaml", "metrics.jsonl"], "h1", False),  # killed before its first checkpoint
    (["config.yaml", "checkpoint.pt", "edited.mp4"], "h0", True),  # finished with other settings
])
def test_anything_else_is_moved_aside_whole(files, settings_hash, done, tmp_path):
    folder = _folder(tmp_path, files, settings_hash)
    if done:
        write_json_atomic(folder / "done.json", {"settings_hash": settings_hash, "outcome": {"name": "swan",
                                                                                             "status": "done"}})
    how, where = prepare_folder(_job(tmp_path))
    assert how == "run" and not folder.exists()
    assert sorted(p.name for p in (tmp_path / "b" / ".superseded" / where.split("/")[-1]).iterdir()) == \
        sorted([*files, "batch_settings.json"] + (["done.json"] if done else []))


def test_a_finished_clip_is_reused_only_with_its_settings(tmp_path):
    folder = _folder(tmp_path, ["config.yaml"])
    write_json_atomic(folder / "done.json", {"settings_hash": "h1", "outcome": {
        "name": "swan", "status": "done", "seconds": 3.0, "psnr_db": 40.0}})
    assert read_done(folder, "h1").seconds == 3.0 and read_done(folder, "h2") is None
    assert prepare_folder(_job(tmp_path)) == ("done", None)


@pytest.mark.parametrize("error, reason", [
    (RunError("text.src is empty: give it a description"), "text.src is empty: give it a description"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore"),
     "out of GPU memory: CUDA out of memory. Tried to allocate 2.00 GiB"),
    (MemoryError(), "out of memory (host RAM)"),
    (ValueError("bad\nvalue"), "ValueError: bad"),
])
def test_a_failure_is_one_line(error, reason):
    assert _reason(error) == reason


def test_the_clip_log_gets_the_packages_debug_lines_and_the_process_output(tmp_path, capfd):
    log = tmp_path / "log.txt"
    with clip_log(log, redirect_output=True):
        logging.getLogger("text2live_geo.editing.base").debug("step 3/10: total 1.0")
        logging.getLogger("atlas.fitting").info("fitting")
        os.write(1, b"from a library\n")  # what ffmpeg or a C library writes
        os.write(2, b"a warning of a library\n")
    logging.getLogger("text2live_geo.editing.base").debug("after the clip")
    os.write(1, b"back on the console\n")
    text = log.read_text()
    assert "DEBUG text2live_geo.editing.base: step 3/10: total 1.0" in text and "INFO atlas.fitting: fitting" in text
    assert "from a library" in text and "a warning of a library" in text
    assert "after the clip" not in text and "back on the console" not in text
    assert "back on the console" in capfd.readouterr().out


def test_the_before_preview_is_one_decoded_frame_of_the_clip(tmp_path):
    import torch

    from text2live_geo.apps.batch.worker import _input_frame
    from text2live_geo.common.video_io import write_video

    frames = torch.zeros(4, 3, 16, 24)
    for index in range(4):
        frames[index, index % 3] = 1.0  # red, green, blue, red
    video = write_video(tmp_path / "clip.mp4", frames, fps=10)
    pixel = _input_frame(video, 1).getpixel((12, 8))
    assert pixel[1] > 200 and pixel[0] < 60 and pixel[2] < 60  # the green frame
    with pytest.raises(ValueError, match="has no frame 9"):
        _input_frame(video, 9)
