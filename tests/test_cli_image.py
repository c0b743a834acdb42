"""t2l-image (text2live_geo.apps.cli.image, run_image.py) end to end: outputs, resume, and one clear line for
every bad input."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_overrides
from text2live_geo.apps.cli import image

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {"composite.png": "RGB", "edit_layer.png": "RGBA", "alpha.png": "L", "edit_on_greenscreen.png": "RGB",
           "comparison.png": "RGB", "input.png": "RGB"}


def cli(argv):
    return image.main(argv)


def test_cli_run_writes_every_output(tiny_clip_dir, image_path, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli(["--quiet"] + tiny_overrides(image_path, tiny_clip_dir, out, steps=5, run_name="r")) == 0
    run = out / "r"
    for name, mode in OUTPUTS.items():
        with Image.open(run / name) as img:
            assert img.mode == mode, name
            expected_width = 3 * 64 + 2 * 4 if name == "comparison.png" else 64
            assert img.size == (expected_width, 48), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 5 and all(np.isfinite(r["total"]) for r in records)
    assert (run / "config.yaml").read_text().count("steps: 5") == 1
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["step_00002.png", "step_00004.png"]
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 5


def test_resume_continues_at_saved_step(tiny_clip_dir, image_path, tmp_path):
    out = tmp_path / "runs"
    assert cli(["--quiet"] + tiny_overrides(image_path, tiny_clip_dir, out, steps=2, run_name="r")) == 0
    assert cli(["--quiet", "--resume", str(out / "r"), "steps=4"]) == 0
    steps = [json.loads(line)["step"] for line in (out / "r" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert torch.load(out / "r" / "checkpoint.pt", weights_only=True)["step"] == 4


def test_resume_matches_uninterrupted_run(tiny_clip_dir, image_path, tmp_path):
    from text2live_geo import edit_image

    base = tiny_overrides(image_path, tiny_clip_dir, tmp_path / "a", steps=4, checkpoint_every=2, run_name="r")
    whole = edit_image(None, base, progress=False)
    half = edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path / "b", steps=2, run_name="r"),
                      progress=False)
    resumed = edit_image(None, ["steps=4"], resume=half.run_dir, progress=False)
    torch.testing.assert_close(resumed.layers.composite, whole.layers.composite, atol=1e-4, rtol=0)


def test_rgba_input_works_and_says_what_happened(tiny_clip_dir, tmp_path, capsys):
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[..., 0], rgba[:24, :, 3] = 200, 255
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    assert cli(["--quiet"] + tiny_overrides(path, tiny_clip_dir, tmp_path / "o", steps=1)) == 0
    assert "white" in capsys.readouterr().out


def _bad(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("case", ["missing", "not_image", "truncated_png", "truncated_jpg", "too_small",
                                  "empty_text", "unknown_key", "wrong_type", "offline_hub", "no_image"])
def test_bad_input_is_one_line_and_nonzero(case, tiny_clip_dir, image_path, tmp_path, capsys):
    out = tmp_path / "runs"
    overrides = tiny_overrides(image_path, tiny_clip_dir, out, steps=1)
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "f.jpg")
    extra = {
        "missing": ["image=" + str(tmp_path / "nope.png")],
        "not_image": ["image=" + str(_bad(tmp_path, "x.png", b"this is text"))],
        "truncated_png": ["image=" + str(_bad(tmp_path, "t.png", full.read_bytes()[:300]))],
        "truncated_jpg": ["image=" + str(_bad(tmp_path, "t.jpg", (tmp_path / "f.jpg").read_bytes()[:400]))],
        "too_small": ["image=" + str(image_path), "generator.num_scales=6"],
        "empty_text": ["text.comp= "],
        "unknown_key": ["text.compp=blue"],
        "wrong_type": ["steps=five"],
        "offline_hub": ["clip.model=openai/clip-vit-base-patch32"],
        "no_image": [],
    }[case]
    argv = overrides + extra
    if case == "no_image":
        argv = [a for a in argv if not a.startswith("image=")]
    assert cli(["--quiet"] + argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # nothing written for a failed start


def test_resume_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "keep.txt").write_text("mine")
    assert cli(["--resume", str(tmp_path / "junk")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert (tmp_path / "junk" / "keep.txt").read_text() == "mine"


def test_runs_never_overwrite(tiny_clip_dir, image_path, tmp_path):
    out = tmp_path / "runs"
    for _ in range(2):
        assert cli(["--quiet"] + tiny_overrides(image_path, tiny_clip_dir, out, steps=1, run_name="same")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["same", "same-2"]


def test_real_subprocess_help_and_error():
    help_text = subprocess.run([sys.executable, str(ROOT / "run_image.py"), "--help"], capture_output=True,
                               text=True, check=True).stdout
    assert "--resume" in help_text and "text.src" in help_text
    result = subprocess.run([sys.executable, str(ROOT / "run_image.py"), "image=/no/such/file.png"],
                            capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: image not found: '/no/such/file.png'"


def test_a_run_folder_with_the_former_key_names_resumes(tiny_clip_dir, image_path, tmp_path, caplog):
    """A config.yaml saved before the keys were renamed (`log_every`, no `loss.imc`) resumes, and the
    resumed run equals an uninterrupted one."""
    from text2live_geo import edit_image

    whole = edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path / "a", steps=4, checkpoint_every=2,
                                            run_name="r"), progress=False)
    half = edit_image(None, tiny_overrides(image_path, tiny_clip_dir, tmp_path / "b", steps=2, run_name="r"),
                      progress=False)
    config = half.run_dir / "config.yaml"
    lines = config.read_text().splitlines()
    assert any(line.startswith("snapshot_every:") for line in lines) and any("  imc:" in line for line in lines)
    old = [line.replace("snapshot_every:", "log_every:") for line in lines if not line.startswith("  imc:")]
    config.write_text("\n".join(old) + "\n")
    with caplog.at_level("WARNING"):
        resumed = edit_image(None, ["steps=4"], resume=half.run_dir, progress=False)
    assert resumed.steps == 4
    assert any("'log_every' is now 'snapshot_every'" in record.getMessage() for record in caplog.records)
    torch.testing.assert_close(resumed.layers.composite, whole.layers.composite, atol=1e-4, rtol=0)
