"""t2l-video --estimate: the expected time and peak memory of an edit, from real steps timed on its
device and config, without editing or writing anything."""
import json

import pytest

from atlas.testing import make_tiny_atlas
from conftest import TINY_FIT
from text2live_geo.apps.cli import video as video_cli
from text2live_geo.editing.estimate import estimate_video_edit, format_estimate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas_estimate"), seed=11)  # 24 x 16 px, 6 frames


def overrides(tiny, clip_dir, out_dir, **extra):
    """A 6-step edit of the tiny atlas's clip (tiny=None: give video.frames and the atlas in extra)."""
    values = {} if tiny is None else {"video.frames": str(tiny.frames_folder), "atlas.checkpoint": str(tiny.folder),
                                      "atlas.resolution": 48}
    values.update({"clip.model": str(clip_dir), "output_dir": str(out_dir), "text.src": "red circle",
                   "text.comp": "blue circle", "text.screen": "blue circle", "steps": 6, "generator.num_scales": 3,
                   "generator.channels": 8, "clip.n_aug": 2, "device": "cpu", "snapshot_every": 0,
                   "checkpoint_every": 0, "seed": 0})
    values.update(extra)
    return [f"{key}={value}" for key, value in values.items() if value is not None]


def test_estimate_prints_time_and_memory_and_writes_nothing(tiny, tiny_clip_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    code = video_cli.main(["--quiet", "--estimate", "--estimate-steps", "2", *overrides(tiny, tiny_clip_dir, out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()[-5:]
    assert lines[0] == "clip: 6 frames of 24x16; device cpu"
    assert lines[1].startswith("atlas: ") and "no fit needed" in lines[1]
    assert lines[2].startswith("edit: 6 steps x ") and "(median of 2 timed steps)" in lines[2]
    assert lines[3].startswith("expected time: ") and lines[4].startswith("peak memory: ")
    assert not out.exists()  # nothing written: no run folder, no atlas cache


def test_estimate_is_the_sum_of_its_measured_parts_and_near_a_real_run(tiny, tiny_clip_dir, tmp_path):
    from text2live_geo.editing import edit_video

    argv = overrides(tiny, tiny_clip_dir, tmp_path / "runs")
    figures = estimate_video_edit(None, argv, timed_steps=3)
    assert len(figures["step_seconds"]) == 3 and figures["seconds_per_step"] == sorted(figures["step_seconds"])[1]
    assert figures["fit_seconds"] == 0 and figures["steps"] == 6
    assert figures["expected_seconds"] == pytest.approx(figures["prepare_seconds"] + 6 * figures["seconds_per_step"])
    assert figures["peak_gib"] > 0.05  # peak RSS of a process that holds torch and the models
    result = edit_video(None, argv, progress=False)
    real = json.loads((result.run_dir / "summary.json").read_text())["seconds_per_step"]
    # the same steps on the same machine (loose: other processes share its cores)
    assert figures["seconds_per_step"] / 4 < real < 4 * figures["seconds_per_step"] + 0.05


def test_estimate_without_an_atlas_times_a_short_fit_of_the_first_frames(tiny_procedural_clip, tiny_clip_dir,
                                                                         tmp_path):
    fit = {key: value for key, value in TINY_FIT.items() if key.startswith("fit.")}
    argv = overrides(None, tiny_clip_dir, tmp_path / "runs", **fit, **{
        "video.frames": tiny_procedural_clip / "frames"})  # atlas.alpha_threshold 0.95: none yet after 2 iterations
    figures = estimate_video_edit(None, argv, timed_steps=1, fit_iterations=2)
    assert figures["fit_frames_timed"] == 6 and figures["frames"] == 8 and figures["fit_iterations"] == 12
    assert figures["fit_seconds"] == pytest.approx(figures["fit_flow_seconds"] + figures["fit_init_seconds"]
                                                   + 12 * figures["fit_seconds_per_iteration"])
    assert figures["expected_seconds"] > figures["fit_seconds"] > 0
    assert figures["alpha_threshold"] in (0.5, 0.1)  # the short fit's region, at a lower threshold
    assert "atlas fit: ~" in format_estimate(figures)[1] and "first 6 frames" in format_estimate(figures)[1]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["--estimate-steps", "0"], "--estimate-steps must be at least 1"),
    (["--resume", "somewhere"], "--estimate measures a new edit"),
])
def test_bad_estimate_arguments_are_one_line(tiny, tiny_clip_dir, tmp_path, capsys, argv, message):
    code = video_cli.main(["--quiet", "--estimate", *argv, *overrides(tiny, tiny_clip_dir, tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.strip().count("\n") == 0
