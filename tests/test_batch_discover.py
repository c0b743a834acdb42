"""text2live_geo.apps.batch.discover: a folder or a manifest -> the clips, and one clear error for each
kind of bad input."""
import pytest
import torch

from atlas.testing import write_frames
from text2live_geo.apps.batch.discover import discover_clips
from text2live_geo.apps.batch.jobs import BatchError


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_folder_gives_videos_frame_folders_and_images(tmp_path):
    shoot = tmp_path / "shoot"
    _touch(shoot / "swan.mp4")
    _touch(shoot / "clip10.mov")
    _touch(shoot / "clip2.mov")
    write_frames(torch.rand(2, 3, 8, 8), shoot / "car" / "frames")  # car/ has no images directly: not a clip
    write_frames(torch.rand(2, 3, 8, 8), shoot / "dog")
    _touch(shoot / "still.JPG")
    _touch(shoot / "notes.txt")
    _touch(shoot / ".hidden.mp4")
    specs = discover_clips(shoot)
    assert [(s.name, s.kind, s.label) for s in specs] == [
        ("clip2", "video", "clip2.mov"), ("clip10", "video", "clip10.mov"), ("dog", "video", "dog"),
        ("still", "image", "still.JPG"), ("swan", "video", "swan.mp4")]
    assert all(s.source.is_absolute() and s.settings == {} for s in specs)


def test_clips_sharing_a_stem_keep_their_file_names_and_the_output_folder_is_skipped(tmp_path):
    _touch(tmp_path / "in" / "a.mp4")
    _touch(tmp_path / "in" / "a.mov")
    write_frames(torch.rand(1, 3, 8, 8), tmp_path / "in" / "runs" / "in-batch" / "a")
    specs = discover_clips(tmp_path / "in", exclude=tmp_path / "in" / "runs" / "in-batch")
    assert [s.name for s in specs] == ["a.mov", "a.mp4"]


def test_a_manifest_gives_paths_names_and_settings(tmp_path):
    _touch(tmp_path / "clips" / "swan.mp4")
    _touch(tmp_path / "still.png")
    (tmp_path / "atlases" / "swan").mkdir(parents=True)
    (tmp_path / "m.yaml").write_text(
        "clips:\n"
        "  - clip: clips/swan.mp4\n"
        "    text.src: swan\n"
        "    atlas.checkpoint: atlases/swan\n"
        "  - clip: clips/swan.mp4\n"
        "    name: swan-bg\n"
        "    layer: background\n"
        "    text: {src: lake, comp: frozen lake}\n"
        "  - still.png\n")
    specs = discover_clips(tmp_path / "m.yaml")
    assert [(s.name, s.kind, s.label) for s in specs] == [
        ("swan", "video", "swan.mp4"), ("swan-bg", "video", "swan-bg"), ("still", "image", "still.png")]
    assert specs[0].settings == {"text.src": "swan", "atlas.checkpoint": str(tmp_path / "atlases" / "swan")}
    assert specs[1].settings == {"layer": "background", "text.src": "lake", "text.comp": "frozen lake"}
    assert specs[0].source == tmp_path / "clips" / "swan.mp4"


@pytest.mark.parametrize("kind, message", [
    ("empty folder", "is empty"),
    ("no clips", "holds no clips: none of its 2 entries is a video file"),
    ("missing input", "not found: give a folder of clips or a manifest"),
    ("not a manifest", "is neither a folder of clips nor a manifest"),
    ("missing clip", "entry 2 (gone.mp4): clip 'gone.mp4' not found (relative paths start at the manifest's"),
    ("same name twice", "entries 1 and 3 both write to the clip folder 'A' (names that differ only in case"),
    ("no clip key", "entry 1: no clip"),
    ("not yaml", "is not valid YAML (line "),
    ("no list", "must list clips"),
    ("no entries", "lists no clips"),
    ("unknown top-level key", "unknown top-level key 'settings'"),
    ("batch key in an entry", "output_dir is the batch's"),
    ("video.frames in an entry", "the clip's path is clip:, not video.frames"),
    ("not a clip", "is neither a video file, a folder of frames nor an image"),
    ("bad name", "name 'a/b' is not a safe folder name"),
])
def test_bad_input_is_one_clear_error(kind, message, tmp_path):
    _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "b.mp4")
    manifests = {
        "missing clip": "- a.mp4\n- gone.mp4\n",
        "same name twice": "- {clip: a.mp4, name: a}\n- b.mp4\n- {clip: b.mp4, name: A}\n",
        "no clip key": "- {text.src: swan}\n",
        "not yaml": "clips:\n  - a.mp4: [\n  - b\n",
        "no list": "clips: a.mp4\n",
        "no entries": "clips: []\n",
        "unknown top-level key": "clips: [a.mp4]\nsettings: {steps: 3}\n",
        "batch key in an entry": "- {clip: a.mp4, output_dir: elsewhere}\n",
        "video.frames in an entry": "- {clip: a.mp4, video.frames: b.mp4}\n",
        "not a clip": "- m.yaml\n",
        "bad name": "- {clip: a.mp4, name: a/b}\n",
    }
    if kind == "empty folder":
        (tmp_path / "empty").mkdir()
        target = tmp_path / "empty"
    elif kind == "no clips":
        _touch(tmp_path / "docs" / "notes.txt")
        (tmp_path / "docs" / "sub").mkdir()
        target = tmp_path / "docs"
    elif kind == "missing input":
        target = tmp_path / "nowhere"
    elif kind == "not a manifest":
        target = tmp_path / "a.mp4"
    else:
        target = tmp_path / "m.yaml"
        target.write_text(manifests[kind])
    with pytest.raises(BatchError) as caught:
        discover_clips(target)
    assert message in str(caught.value) and "\n" not in str(caught.value)
