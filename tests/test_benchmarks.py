"""Smoke tests: the benchmark scripts run end to end on tiny models and print their figures."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_step_prints_speedup_line(tiny_clip_dir):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_step.py"), "--size", "40", "--views", "2", "--steps", "1",
         "--clip-folder", str(tiny_clip_dir), "--set", "generator.num_scales=3", "--set", "generator.channels=8"],
        capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                                          "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("speedup_vs_baseline: ")
    assert float(lines[-1].split(": ")[1]) > 0
    assert any(line.startswith("ours ") for line in lines) and any(line.startswith("baseline ") for line in lines)


@pytest.mark.slow
def test_deviations_benchmark_writes_its_tables(tiny_clip_dir, tmp_path):
    out = tmp_path / "deviations"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "deviations.py"), "--clip", str(tiny_clip_dir), "--draws", "2",
         "--views", "2", "--skip-cost", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                                          "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    table = out.with_suffix(".md").read_text()
    assert "| directional | reference recipe |" in table and "| imc | ours |" in table
    assert "| directional | True | 0.00000 |" in table  # masked source: the unedited video's structure loss is 0
