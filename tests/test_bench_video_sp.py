"""benchmarks/video_sp.py: its clips' ground truth, its pixel judges, and the harness end to end on
one tiny case (fit, edit, curve by resuming, rows, rerun skipping them)."""
import dataclasses
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(name: str = "video_sp"):
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    return importlib.import_module(name)


def test_case_sets_are_held_out_and_mixed():
    v, sp, judge = bench(), bench("sp_dilemma"), bench("sp_judge")
    # above the image benchmark's decision / confirmation / calibration seed ranges
    assert max(sp.CONFIRMATION_SEED, judge.CALIBRATION_SEED) + sp.SEED_SPAN <= v.CASE_SEED
    cases = [v.make_case(i, 64, 40, 3) for i in range(6)]
    assert [c.seed for c in cases] == [v.CASE_SEED + i for i in range(6)]
    assert [c.clip.camera for c in cases[:4]] == list(v.CAMERAS)
    assert [c.kind for c in cases] == ["recolour", "recolour", "retexture"] * 2
    for case in cases:
        assert case.target not in (case.colour, case.texture)
        assert frozenset((case.colour, case.target)) not in v.CLOSE_PAIRS
    with pytest.raises(v.BenchmarkError):
        v.make_case(v.SEED_SPAN)


@pytest.mark.parametrize("index", [1, 2])  # a panning recolour, a zooming retexture
def test_masks_are_exactly_where_the_object_is_drawn(index):
    from toyworld import world

    v = bench()
    case = v.make_case(index, 96, 56, 4)
    for spec in (case.clip, v.edited_by_construction(case)):
        clip = v.render_clip(spec)
        assert clip.masks.any(axis=(1, 2)).all()
        outside = ~clip.masks[:, None].repeat(3, axis=1)
        assert np.array_equal(clip.frames[outside], clip.background[outside])  # the bare background, untouched
        rgb, shade = spec.obj.rgb.astype(np.float32), world.texture_shade(spec.obj.rgb).astype(np.float32)
        pixels = clip.frames.transpose(0, 2, 3, 1)[clip.masks]
        is_rgb, is_shade = (pixels == rgb).all(axis=1), (pixels == shade).all(axis=1)
        assert (is_rgb | is_shade).all()  # every mask pixel has the object's colour or its texture shade
        assert is_shade.any() == (spec.obj.texture != "plain")
        assert not clip.masks[:, [0, -1], :].any() and not clip.masks[:, :, [0, -1]].any()  # wholly in the frame


@pytest.mark.parametrize("index", [0, 2])  # a recolour, a retexture
def test_judges_pass_an_exact_edit_and_fail_the_untouched_clip(index):
    v = bench()
    case = v.make_case(index, 128, 80, 5)
    truth = v.truth_of(v.render_clip(case.clip))
    exact = v.truth_of(v.render_clip(v.edited_by_construction(case))).frames
    judged = v.judge_clip(exact, truth, case)
    assert judged["plasticity"] and judged["plasticity_frames"] == 1.0
    assert judged["attribute_kept"] and judged["attribute_kept_frames"] == 1.0
    assert judged["psnr_outside"] == v.PSNR_CAP  # not a pixel outside the object changed
    assert judged["shape_iou"] > 0.95
    untouched = v.judge_clip(truth.frames, truth, case)
    assert not untouched["plasticity"] and untouched["plasticity_frames"] == 0.0
    assert untouched["psnr_outside"] == v.PSNR_CAP and untouched["shape_iou"] == pytest.approx(
        v.judge_input(truth, case)["shape_iou_input"])
    painted = exact.copy()
    painted[:, :, :8, :8] = 1.0 - painted[:, :, :8, :8]  # paint over a corner of the background
    worse = v.judge_clip(painted, truth, case)
    assert worse["psnr_outside"] < 40 and worse["shape_iou"] < judged["shape_iou"] and worse["plasticity"]


def test_warp_error_is_zero_along_the_true_motion_and_flicker_is_seen():
    v = bench()
    case = v.make_case(2, 96, 64, 6)  # a retexture: give the object stripes so that motion shows inside it
    obj = dataclasses.replace(case.clip.obj, texture="striped", texture_angle=0.0)
    # a still camera, the object sliding 2 px a frame: the true flow is exact on the pixel grid
    path = v.ObjectPath(start=(34.0, 32.0), end=(44.0, 32.0), radius=18.0)
    clip = v.render_clip(dataclasses.replace(case.clip, camera="static", obj=obj, path=path))
    truth = v.truth_of(clip)
    on = clip.masks[:-1]
    assert np.allclose(clip.flow[on], [2.0, 0.0]) and np.allclose(clip.flow[~on], 0.0)
    assert v.warp_error(truth.frames, truth.masks, truth.flow) == 0.0
    assert v.warp_error(truth.frames, truth.masks, np.zeros_like(truth.flow)) > 0.02  # the wrong motion
    assert v.colour_spread(truth.frames, truth.masks) < 0.01
    flicker = truth.frames.copy()
    flicker[3][:, truth.masks[3]] *= 0.5  # one frame's object darker
    assert v.colour_spread(flicker, truth.masks) > 0.05
    assert v.warp_error(flicker, truth.masks, truth.flow) > 0.02


def test_the_default_row_must_be_the_shipped_config(tmp_path):
    v = bench()
    args = v.build_parser().parse_args(["--work", str(tmp_path)])
    default = v.flat_values(v.resolve(v.SETTINGS[v.DEFAULT], args))
    assert v.check_default(default, args)["equal"]
    with pytest.raises(v.BenchmarkError, match="refusing to label a row 'default'"):
        v.check_default({**default, "clip.n_aug": 2}, args)
    with pytest.raises(v.BenchmarkError, match="benchmark-wide key"):
        v.resolve(v.Setting("x", ("clip.model=other",)), args)
    fast = v.flat_values(v.resolve(v.SETTINGS["fast"], args))
    assert v.fit_group(fast) != v.fit_group(default)  # its own fit (fit.iterations)
    assert v.curve_points("default", 3000, args) == (list(v.DEFAULT_CURVE), False)
    capped = v.build_parser().parse_args(["--work", str(tmp_path), "--curve", "5,50", "--max-steps", "20",
                                          "--max-steps", "fast=200"])
    assert v.curve_points("default", 3000, capped) == ([5, 20], True)
    assert v.curve_points("fast", 150, capped) == ([5, 50, 150], False)


TINY = ["--cases", "1", "--width", "64", "--height", "40", "--frames", "6", "--settings", "default",
        "--candidate", "views3 clip.n_aug=3 steps=3", "--curve", "1", "--fit-masks", "exact",
        "--set", "generator.num_scales=3", "--set", "generator.channels=8", "--set", "fit.iterations=8",
        "--set", "fit.samples=1024", "--set", "fit.eval_every=4", "--set", "fit.flow_preset=ultrafast",
        "--set", "atlas.alpha_threshold=0.5"]


def test_harness_fits_once_edits_along_the_curve_writes_rows_and_resumes(tmp_path, monkeypatch):
    v = bench()
    results = tmp_path / "results"
    argv = TINY + ["--work", str(tmp_path / "work"), "--results", str(results), "--name", "tiny"]
    v.main(argv + ["--max-steps", "2"])
    rows = v.read_rows(results / "tiny_rows.jsonl")
    assert sorted((r["setting"], r["step"]) for r in rows) == [("default", 1), ("default", 2), ("views3", 1),
                                                               ("views3", 2)]
    assert len({r["fit_group"] for r in rows}) == 1 and len(list((tmp_path / "work" / "atlas_cache").iterdir())) == 1
    for r in rows:
        assert 0.0 <= r["plasticity_frames"] <= 1.0 and r["psnr_outside"] > 20 and 0 < r["shape_iou"] <= 1
        assert r["warp_error_input"] >= 0 and r["train_seconds"] > 0 and r["seconds_to_result"] > r["fit_seconds"]
    data = json.loads((results / "tiny.json").read_text())
    assert data["default_check"]["equal"] and data["settings"]["default"]["truncated"]
    assert set(data["comparisons"]) == set(v.VIDEO_METRICS)
    assert "Reduced scale" in (results / "tiny.md").read_text()

    calls = []
    original = v.edit_to
    monkeypatch.setattr(v, "edit_to", lambda run_dir, step, overrides: calls.append(
        (run_dir.name, step, v._checkpoint_step(run_dir))) or original(run_dir, step, overrides))
    v.main(argv + ["--max-steps", "2"])  # everything is there: nothing runs
    assert calls == [] and len(v.read_rows(results / "tiny_rows.jsonl")) == 4
    v.main(argv + ["--max-steps", "default=2"])  # views3 on to its own 3 steps, resumed from step 2
    assert calls == [("views3-case000", 3, 2)]
    rows = v.read_rows(results / "tiny_rows.jsonl")
    assert len(rows) == 5 and rows[-1]["setting"] == "views3" and rows[-1]["step"] == 3
    metrics = (tmp_path / "work" / "runs" / "views3-case000" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in metrics] == [1, 2, 3]  # one uninterrupted run
