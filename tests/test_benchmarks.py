"""Smoke tests: the benchmark scripts run end to end on tiny models and print their figures."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_step_prints_speedup_line(tiny_clip_dir, tmp_path):
    out = tmp_path / "bench_step.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_step.py"), "--size", "40", "--views", "2", "--steps", "1",
         "--clip-folder", str(tiny_clip_dir), "--set", "generator.num_scales=3", "--set", "generator.channels=8",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                                          "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("speedup_vs_baseline: ")
    assert float(lines[-1].split(": ")[1]) > 0
    assert any(line.startswith("ours ") for line in lines) and any(line.startswith("baseline ") for line in lines)
    # the two modes run different code: the baseline encodes each of its 4 x views views alone (the
    # composite twice, the input and the green screen), plus the 2 structure passes; ours batches them
    counts = {line.split()[0]: (int(re.search(r"CLIP calls +(\d+)", line).group(1)),
                                int(re.search(r"views encoded +(\d+)", line).group(1)))
              for line in lines if line.startswith(("ours ", "baseline "))}
    assert counts["baseline"] == (4 * 2 + 2, 4 * 2)
    assert counts["ours"][0] < counts["baseline"][0]
    figures = json.loads(out.read_text())  # the figures file: settings, load, each mode's result
    assert figures["results"]["baseline"]["image_encodings"] == 4 * 2  # one CLIP call per view
    assert figures["results"]["ours"]["image_encodings"] < figures["results"]["baseline"]["image_encodings"]
    assert figures["settings"]["views"] == 2 and len(figures["loadavg_before"]) == 3
    assert abs(figures["speedup_vs_baseline"] - float(lines[-1].split(": ")[1])) < 0.01


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


def _benchmark(name: str):
    """Import benchmarks/<name>.py as a module (the folder is not a package)."""
    import importlib

    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module(name)


def test_sp_bootstrap_interval_agrees_with_the_normal_approximation():
    import math

    sp = _benchmark("sp_dilemma")
    mean, low, high = sp.bootstrap_interval([1] * 60 + [0] * 40)
    assert mean == 0.6 and low < 0.6 < high
    # 95 % normal interval of a proportion: 1.96 sqrt(p (1 - p) / n) = 0.096
    assert abs((high - low) / 2 - 1.96 * math.sqrt(0.6 * 0.4 / 100)) < 0.01
    assert sp.bootstrap_interval([2.5] * 10) == (2.5, 2.5, 2.5)
    assert sp.bootstrap_interval([0.0, 1.0], seed=3) == sp.bootstrap_interval([0.0, 1.0], seed=3)


@pytest.mark.slow
def test_sp_benchmark_writes_intervals_and_curves_and_resumes(tiny_clip_dir, tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "sp_dilemma.py"), "--cases", "2", "--steps", "10",
               "--views", "2", "--size", "40", "--scales", "3", "--channels", "8", "--jobs", "1",
               "--clip", str(tiny_clip_dir), "--settings", "directional,geodesic-templates-previous",
               "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results")]
    env = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "results" / "sp_dilemma.json").read_text())
    assert [(r["case"], r["seed"]) for r in data["cases"] if r["setting"] == "directional"] == [(0, 0), (1, 1)]
    summary = data["summary"]
    low_high = summary["directional"]["plasticity"]
    assert low_high[1] <= low_high[0] <= low_high[2]
    assert "plasticity_minus_baseline" in summary["directional"]
    assert "plasticity_minus_baseline" not in summary["geodesic-templates-previous"]
    assert [point["step"] for point in summary["directional"]["curve"]] == [10]
    for name in ("sp_dilemma.md", "sp_dilemma.png", "sp_dilemma_curves.png", "sp_dilemma_grid.png"):
        assert (tmp_path / "results" / name).stat().st_size > 0
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and "(4 already done)" in again.stdout


@pytest.mark.slow
def test_gradient_shares_of_the_update_sum_to_one(tiny_clip_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gradient_shares.py"), "--cases", "1", "--steps", "3",
         "--views", "2", "--size", "40", "--scales", "3", "--channels", "8", "--clip", str(tiny_clip_dir),
         "--results", str(tmp_path), "--settings", "geodesic-templates-previous"],
        capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                                          "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    phases = json.loads((tmp_path / "gradient_shares.json").read_text())["summary"]["geodesic-templates-previous"]
    for terms in phases.values():
        assert {"composition", "imc", "imr", "screen", "structure", "sparsity"} <= set(terms)
        # g = sum_k g_k, so sum_k <g_k, g> / |g|^2 = 1 on every step, hence for the means too
        assert abs(sum(term["projection_share"] for term in terms.values()) - 1) < 1e-6
        assert abs(sum(term["norm_share"] for term in terms.values()) - 1) < 1e-6


def test_gpu_suite_refuses_without_cuda_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the suite would run")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py")], capture_output=True,
                            text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no CUDA GPU" in result.stderr and "--device cpu --tiny" in result.stderr
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--device", "cpu"],
                             capture_output=True, text=True, timeout=120, env={"OMP_NUM_THREADS": "1",
                                                                                "PATH": "/usr/bin:/bin"})
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--tiny" in refused.stderr


@pytest.mark.slow
def test_gpu_suite_tiny_dry_run_prints_every_figure(tmp_path):
    out = tmp_path / "gpu_suite.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--device", "cpu", "--tiny", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                                          "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    names = [line.split(":")[0] for line in result.stdout.splitlines()[1:]]
    assert names == ["image_step_fp32", "image_step_bf16", "image_step_baseline", "image_speedup_fp32_vs_baseline",
                     "image_speedup_bf16_vs_baseline", "video_step", "atlas_fit_iterations_per_s",
                     "atlas_seconds_to_30db", "gpu_suite_seconds"]
    figures = json.loads(out.read_text())
    image = figures["image"]
    # the baseline is the reference structure (4 x views encodings), ours batches: different code ran
    assert image["baseline"]["views_encoded"] == 4 * 2 and image["fp32"]["views_encoded"] < 4 * 2
    assert (image["fp32"]["precision"], image["bf16"]["precision"]) == ("fp32", "bf16")
    assert all(image[name]["step_s"] > 0 and image[name]["peak_gib"] > 0 for name in image)
    assert figures["video"]["step_s"] > 0 and (figures["video"]["width"], figures["video"]["height"]) == (48, 32)
    atlas = figures["atlas"]
    assert atlas["iterations"] > 0 and atlas["iterations_per_s"] > 0 and atlas["frames"] == 6
    assert [point["psnr_db"] for point in atlas["curve"]][-1] > atlas["curve"][0]["psnr_db"]  # the fit fitted
