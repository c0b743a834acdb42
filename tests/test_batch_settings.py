"""text2live_geo.apps.batch.settings: batch keys vs edit keys, each clip's whole config (manifest entry
wins, keys a clip's config lacks skipped), unknown keys named, and the settings hash."""
import os

import pytest
from omegaconf import OmegaConf

from text2live_geo.apps.batch.config import Executor
from text2live_geo.apps.batch.discover import discover_clips
from text2live_geo.apps.batch.jobs import BatchError
from text2live_geo.apps.batch.settings import compose_jobs, load_batch_settings
from text2live_geo.common.config import ConfigError
from text2live_geo.config import ImageEditConfig, VideoEditConfig


def _config(job, schema):
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.create(job.settings_yaml)))


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "swan.mp4").write_bytes(b"x")
    (tmp_path / "still.png").write_bytes(b"x")
    (tmp_path / "m.yaml").write_text("- {clip: swan.mp4, steps: 7, atlas.checkpoint: atlases/swan}\n- still.png\n")
    return tmp_path / "m.yaml"


def test_batch_keys_and_edit_keys_are_split(tmp_path):
    config = tmp_path / "batch.yaml"
    config.write_text("workers: 3\nray: {num_cpus: 2}\nsteps: 50\ntext: {src: swan}\n")
    batch, edit = load_batch_settings(config, ["executor=ray", "ray.address=auto", "layer=background",
                                               "mode=inversion", "steps=60", "output_dir=out"])
    assert (batch.executor, batch.workers, batch.ray.address, batch.ray.num_cpus, batch.output_dir) == \
        (Executor.ray, 3, "auto", 2.0, "out")
    assert edit.flat == {"steps": 60, "text.src": "swan", "layer": "background", "mode": "inversion"}


def test_each_clip_gets_the_keys_of_its_config_and_its_entry_wins(manifest, tmp_path):
    _, edit = load_batch_settings(None, ["steps=5", "layer=background", "mode=inversion", "text.src=bird",
                                         "fit.iterations=30"])
    video, image = compose_jobs(discover_clips(manifest), edit, tmp_path / "runs" / "b")
    video_cfg, image_cfg = _config(video, VideoEditConfig), _config(image, ImageEditConfig)
    assert (video_cfg.steps, video_cfg.layer, video_cfg.text.src) == (7, "background", ["bird"])
    assert video_cfg.fit.iterations == 30
    assert video_cfg.video.frames == str(tmp_path / "swan.mp4") and video_cfg.run_name == "swan"
    assert video_cfg.atlas.checkpoint == str(tmp_path / "atlases" / "swan")  # relative to the manifest
    assert video_cfg.output_dir == str(tmp_path / "runs" / "b")
    assert (image_cfg.steps, image_cfg.mode, image_cfg.image) == (5, "inversion", str(tmp_path / "still.png"))
    assert video.run_dir == str(tmp_path / "runs" / "b" / "swan")
    assert image.run_dir == str(tmp_path / "runs" / "b" / "still")
    assert video.group == image.group is None  # an atlas is given: nothing to fit


def test_paths_in_overrides_become_absolute(manifest, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, edit = load_batch_settings(None, ["atlas.checkpoint=atlases/x", "clip.model=openai/clip-vit-base-patch32"])
    assert edit.flat["atlas.checkpoint"] == str(tmp_path / "atlases" / "x")
    assert edit.flat["clip.model"] == "openai/clip-vit-base-patch32"  # a hub id, not a folder here


@pytest.mark.parametrize("override, message", [
    ("colour=red", "unknown key 'colour': neither a batch key"),
    ("text.colour=red", "unknown key 'text.colour'"),
    ("executor=spark", "'executor'"),
    ("workers=-1", "workers and threads must be >= 0"),
    ("steps", "is not of the form key=value"),
])
def test_bad_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_batch_settings(None, [override])


@pytest.mark.parametrize("entry, message", [
    ("{clip: swan.mp4, colour: red}", "entry 1 (swan.mp4): unknown key 'colour' (not a key of the video config)"),
    ("{clip: still.png, layer: background}", "unknown key 'layer' (not a key of the image config)"),
    ("{clip: swan.mp4, steps: many}", "entry 1 (swan.mp4): bad config key 'steps'"),
])
def test_a_manifest_entry_with_a_key_its_config_lacks_is_named(entry, message, manifest, tmp_path):
    manifest.write_text(f"- {entry}\n")
    _, edit = load_batch_settings(None, [])
    with pytest.raises((BatchError, ConfigError), match=message.replace("(", r"\(").replace(")", r"\)")):
        compose_jobs(discover_clips(manifest), edit, tmp_path / "runs")


def test_the_hash_follows_settings_and_clip_files_not_the_output_folder(manifest, tmp_path):
    def video_hash(overrides, out="runs"):
        _, edit = load_batch_settings(None, overrides)
        return compose_jobs(discover_clips(manifest), edit, tmp_path / out)[0].settings_hash

    first = video_hash(["text.src=swan"])
    assert video_hash(["text.src=swan"]) == first
    assert video_hash(["text.src=swan"], out="elsewhere") == first
    assert video_hash(["text.src=bird"]) != first
    assert video_hash(["text.src=swan", "steps=99"]) == first  # the entry's steps: 7 wins
    assert video_hash(["text.src=swan", "mode=inversion"]) == first  # an image key: not a video's setting
    os.utime(tmp_path / "swan.mp4", ns=(1, 1))  # the clip replaced (or touched)
    assert video_hash(["text.src=swan"]) != first


def test_a_clip_without_an_atlas_is_grouped_with_other_edits_of_it(tmp_path):
    (tmp_path / "swan.mp4").write_bytes(b"x")
    (tmp_path / "m.yaml").write_text("- swan.mp4\n- {clip: swan.mp4, name: bg, layer: background}\n")
    _, edit = load_batch_settings(None, [])
    first, second = compose_jobs(discover_clips(tmp_path / "m.yaml"), edit, tmp_path / "runs")
    assert first.group == second.group is not None  # both fit the same atlas: never at once


def test_one_atlas_for_several_clips_is_warned_about(tmp_path, caplog):
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "m.yaml").write_text("- a.mp4\n- b.mp4\n")
    _, edit = load_batch_settings(None, [f"atlas.checkpoint={tmp_path}"])
    compose_jobs(discover_clips(tmp_path / "m.yaml"), edit, tmp_path / "runs")
    assert "applies to 2 clips (a.mp4, b.mp4); an atlas belongs to one clip" in caplog.text
