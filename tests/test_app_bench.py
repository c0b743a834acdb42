"""Smoke test: benchmarks/bench_app.py runs end to end on tiny models and writes its figures."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gradio")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_app_prints_the_overhead_and_writes_its_figures(tiny_clip_dir, tmp_path):
    out = tmp_path / "app.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_app.py"), "--steps", "2", "--repeats", "1", "--no-browser",
         "--snapshot-every", "1", "--clip-folder", str(tiny_clip_dir), "--set", "generator.num_scales=3",
         "--set", "generator.channels=8", "--set", "clip.n_aug=2", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(tmp_path / "g")})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("app_overhead: ") and lines[-1].endswith(" %")
    figures = json.loads(out.read_text())
    assert len(figures["cli_seconds"]) == len(figures["app_seconds"]) == 1
    assert figures["first_snapshot_client_seconds"][0] > 0  # a snapshot streamed before the end
    assert figures["first_snapshot_browser_seconds"] is None and len(figures["loadavg_before"]) == 3
    # the seconds are stored rounded to 1 ms, the overhead from the unrounded ones: the ratio of the rounded
    # values is off by at most 0.0005 (1 / cli + app / cli^2) (it was 1.5e-3 once, at 0.7 s per edit)
    app, cli = figures["app_seconds"][0], figures["cli_seconds"][0]
    assert abs(figures["overhead"] - (app / cli - 1)) <= 0.0005 * (1 / cli + app / cli**2) + 1e-4
