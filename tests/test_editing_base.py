"""text2live_geo.editing.base: what an editor subclass must provide; a resumed run (image or video),
even one killed after its last checkpoint, reads as one uninterrupted run; a caller's run folder."""
import json

import pytest

from conftest import tiny_overrides
from text2live_geo.common.runs import MetricsLog, RunError
from text2live_geo.editing.base import GeneratorTraining
from text2live_geo.editing.image import ImageEditor
from text2live_geo.editing.video import VideoEditor


def test_generator_training_declares_the_methods_a_subclass_provides():
    assert GeneratorTraining.__abstractmethods__ == {"draw_sample", "render_sample", "snapshot",
                                                     "has_bootstrap_target"}

    class Incomplete(GeneratorTraining):
        def has_bootstrap_target(self) -> bool:
            return False

    with pytest.raises(TypeError, match="render_sample"):
        Incomplete()
    assert not ImageEditor.__abstractmethods__ and not VideoEditor.__abstractmethods__


# ------------------------------------------------- a resumed run reads as one uninterrupted run
def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _simulate_kill_after_checkpoint(run_dir, extra_steps):
    """What a run killed with SIGKILL some steps after its last checkpoint leaves: metrics lines past
    the checkpoint's step, the last one torn mid-write."""
    last = _records(run_dir)[-1]
    with (run_dir / "metrics.jsonl").open("a") as handle:
        for step in extra_steps:
            handle.write(json.dumps({**last, "step": step, "total": 123.0}) + "\n")
        handle.write('{"step": 99, "tot')


def _assert_one_uninterrupted_run(resumed, whole, steps):
    assert [r["step"] for r in resumed] == list(range(1, steps + 1))
    for got, expected in zip(resumed, whole):
        assert {k: v for k, v in got.items() if k != "seconds"} == \
            pytest.approx({k: v for k, v in expected.items() if k != "seconds"}, rel=1e-4, abs=1e-6)
    seconds = [r["seconds"] for r in resumed]
    assert seconds == sorted(seconds)  # the clock continues from the checkpoint's


def test_metrics_truncate_keeps_steps_up_to_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.truncate(3)  # no file yet: nothing to do
    for step in range(1, 6):
        log.write({"step": step, "total": float(step)})
    (tmp_path / "metrics.jsonl").open("a").write('{"step": 6, "to')
    log.truncate(3)
    assert [r["step"] for r in _records(tmp_path)] == [1, 2, 3]


def test_image_run_killed_after_its_checkpoint_resumes_as_one_run(tiny_clip_dir, image_path, tmp_path):
    from text2live_geo import edit_image

    whole = edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path, steps=6, checkpoint_every=4,
                                            run_name="whole"), progress=False)
    cut = edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path, steps=4, checkpoint_every=4,
                                          run_name="cut"), progress=False)
    _simulate_kill_after_checkpoint(cut.run_dir, [5, 6, 7])  # killed at step 7, checkpoint at 4
    edit_image(None, ["steps=6"], resume=cut.run_dir, progress=False)
    _assert_one_uninterrupted_run(_records(cut.run_dir), _records(whole.run_dir), 6)


def test_video_run_killed_after_its_checkpoint_resumes_as_one_run(tiny_clip_dir, tmp_path):
    from atlas.testing import make_tiny_atlas
    from text2live_geo import edit_video

    tiny = make_tiny_atlas(tmp_path / "atlas", seed=11)

    def overrides(steps, name):
        values = {"video.frames": tiny.frames_folder, "atlas.checkpoint": tiny.folder, "atlas.resolution": 48,
                  "clip.model": tiny_clip_dir, "output_dir": tmp_path / "runs", "run_name": name,
                  "text.src": "red circle", "text.comp": "blue circle", "text.screen": "blue circle",
                  "steps": steps, "generator.num_scales": 3, "generator.channels": 8, "clip.n_aug": 2,
                  "device": "cpu", "snapshot_every": 0, "checkpoint_every": 2, "crops.full_atlas_every": 2}
        return [f"{key}={value}" for key, value in values.items()]

    whole = edit_video(None, overrides(4, "whole"), progress=False)
    cut = edit_video(None, overrides(2, "cut"), progress=False)
    _simulate_kill_after_checkpoint(cut.run_dir, [3, 4])
    edit_video(None, ["steps=4"], resume=cut.run_dir, progress=False)
    _assert_one_uninterrupted_run(_records(cut.run_dir), _records(whole.run_dir), 4)


def test_a_given_run_folder_is_used_and_never_one_holding_a_run(tiny_clip_dir, image_path, tmp_path):
    from text2live_geo import edit_image

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "log.txt").write_text("the caller's log\n")
    result = edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path / "elsewhere", steps=1),
                        progress=False, run_dir=folder)
    assert result.run_dir == folder and (folder / "composite.png").is_file()
    assert (folder / "log.txt").read_text() == "the caller's log\n" and not (tmp_path / "elsewhere").exists()
    with pytest.raises(RunError, match="already holds a run"):
        edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path, steps=1), progress=False, run_dir=folder)


def test_a_run_of_the_former_generator_resumes_only_with_its_keys(tiny_clip_dir, image_path, tmp_path):
    from text2live_geo import edit_image

    former = ["generator.top_norm=true", "generator.inv_colour_scale=1"]
    run = edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path, steps=2) + former, progress=False)
    # a run folder from before the reference generator was the default: no such keys in its config
    config = run.run_dir / "config.yaml"
    config.write_text("".join(line for line in config.read_text().splitlines(keepends=True)
                              if "top_norm" not in line and "inv_colour_scale" not in line))
    with pytest.raises(RunError, match="generator.top_norm=true generator.inv_colour_scale=1"):
        edit_image(resume=run.run_dir, overrides=["steps=3"], progress=False)
    resumed = edit_image(resume=run.run_dir, overrides=["steps=3"] + former, progress=False)
    assert resumed.steps == 3


# ------------------------------------------------------------------------ stopping a run
def test_should_stop_ends_the_run_within_one_step_with_a_checkpoint_that_resumes(tiny_clip_dir, image_path,
                                                                                   tmp_path):
    import torch

    from text2live_geo import edit_image

    asked = []

    def stop_after_two():
        asked.append(True)
        return len(asked) >= 2

    overrides = tiny_overrides(image_path, tiny_clip_dir, tmp_path, steps=6, checkpoint_every=0, snapshot_every=0)
    stopped = edit_image(overrides=overrides, progress=False, should_stop=stop_after_two)
    assert stopped.steps == 2 and len(asked) == 2  # asked after each step, stopped right after the second
    assert torch.load(stopped.run_dir / "checkpoint.pt", weights_only=True)["step"] == 2
    assert [r["step"] for r in _records(stopped.run_dir)] == [1, 2]
    assert (stopped.run_dir / "composite.png").is_file()  # the edit so far

    resumed = edit_image(resume=stopped.run_dir, progress=False, should_stop=lambda: False)
    assert resumed.steps == 6 and [r["step"] for r in _records(stopped.run_dir)] == list(range(1, 7))
