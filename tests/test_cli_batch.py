"""t2l-batch (text2live_geo.apps.cli.batch, run_batch.py): --help, and every bad input is one line, exit
status 2, with nothing written. (Whole batches through the CLI: tests/test_batch_run.py.)"""
import subprocess
import sys
from pathlib import Path

import pytest

from text2live_geo.apps.cli import batch as batch_cli

ROOT = Path(__file__).resolve().parents[1]


def test_help_names_the_batch_keys_and_the_exit_statuses():
    result = subprocess.run([sys.executable, str(ROOT / "run_batch.py"), "--help"], capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for word in ("INPUT", "--config", "executor (local|ray)", "workers", "ray.address", "text.src",
                 "fit.iterations", "0 when every clip is done", "docs/batch.md"):
        assert word in " ".join(result.stdout.split()), word


def _bad_input(kind, tmp_path):
    """The batch's arguments for one kind of bad input, and the message's telling part."""
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.mp4").write_bytes(b"x")
    if kind == "empty folder":
        (tmp_path / "empty").mkdir()
        return [tmp_path / "empty"], "is empty"
    if kind == "folder with no clips":
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "notes.txt").write_text("x")
        return [tmp_path / "docs"], "holds no clips"
    manifests = {
        "unknown key": ("- {clip: a.mp4, colour: red}\n", "unknown key 'colour' (not a key of the video config)"),
        "missing clip": ("- a.mp4\n- gone.mp4\n", "clip 'gone.mp4' not found"),
        "same output name": ("- {clip: a.mp4, name: a}\n- {clip: b.mp4, name: A}\n",
                             "both write to the clip folder 'A'"),
    }
    if kind in manifests:
        text, message = manifests[kind]
        (tmp_path / "m.yaml").write_text(text)
        return [tmp_path / "m.yaml"], message
    if kind == "unknown batch-wide key":
        return [tmp_path, "colour=red"], "unknown key 'colour': neither a batch key"
    if kind == "bad executor":
        return [tmp_path, "executor=slurm"], "'executor'"
    if kind == "output folder that is not a batch":
        (tmp_path / "runs" / "x").mkdir(parents=True)
        (tmp_path / "runs" / "x" / "mine.txt").write_text("keep me")
        return [tmp_path, "run_name=x"], "exists and is not a batch folder"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty folder", "folder with no clips", "unknown key", "missing clip",
                                  "same output name", "unknown batch-wide key", "bad executor",
                                  "output folder that is not a batch"])
def test_bad_input_is_one_clear_line_and_nothing_is_written(kind, tmp_path, capsys):
    argv, message = _bad_input(kind, tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code = batch_cli.main(["--quiet", *map(str, argv), f"output_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written, nothing written over


def test_the_batch_driver_imports_no_torch():
    """The driver only lists files, composes configs and schedules: its start-up stays light (the
    workers import torch once each)."""
    code = ("import sys, text2live_geo.apps.cli.batch, text2live_geo.apps.batch.run, "
            "text2live_geo.apps.batch.discover; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "False"
