"""Smoke tests: the procedural-clip script and the flow / masks benchmark run end to end."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}


def test_make_procedural_clip_script(tmp_path):
    out = tmp_path / "clip"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_procedural_clip.py"), "--out", str(out), "--frames", "3",
         "--width", "40", "--height", "24", "--camera", "zoom", "--seed", "2", "--flow"],
        capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("wrote ")
    assert (out / "clip.mp4").stat().st_size > 0 and (out / "flow.npz").exists()
    assert len(list((out / "frames").glob("*.png"))) == 3 and len(list((out / "masks").glob("*.png"))) == 3
    settings = json.loads((out / "clip.json").read_text())
    assert settings["camera"] == "zoom" and settings["frames"] == 3 and settings["seed"] == 2


def test_bench_flow_prints_figures():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_flow.py"), "--sizes", "48x32", "--presets", "ultrafast",
         "--flow-frames", "3", "--flow-seeds", "1", "--mask-frames", "4", "--mask-size", "48x32",
         "--mask-cameras", "pan"],
        capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.strip().startswith("48x32 ultrafast") for line in lines)
    assert lines[-1].startswith("mask_iou_mean: ")
    assert 0.0 <= float(lines[-1].split(": ")[1]) <= 1.0
