import json

import pytest
import torch

from conftest import step_losses, tiny_overrides
from text2live_geo.common.config import load_config
from text2live_geo.config import ImageEditConfig
from text2live_geo.editing.image import ImageEditor, edit_image


def _editor(tiny_clip, image_path, tmp_path, **extra):
    from text2live_geo.common.io import read_image

    cfg = load_config(ImageEditConfig, None, tiny_overrides(image_path, "unused", tmp_path, **extra))
    image, _ = read_image(image_path)
    torch.manual_seed(0)
    return ImageEditor(cfg, image, tiny_clip, torch.device("cpu"))


@pytest.mark.parametrize("guidance", ["directional", "geodesic"])
def test_every_loss_reaches_the_generator(tiny_clip, image_path, tmp_path, guidance):
    editor = _editor(tiny_clip, image_path, tmp_path, **{"loss.guidance": guidance, "text.bootstrap": "red square",
                                                        "loss.imr_anchor": "source"})
    editor.generator.train()
    torch.manual_seed(1)
    terms, weights, _ = step_losses(editor, [(editor.image, editor.relevancy)])
    expected = {"composition", "screen", "structure", "sparsity", "bootstrap"} | (
        {"directional"} if guidance == "directional" else {"imc", "imr"})
    assert set(terms) == expected
    for name, value in terms.items():
        if name == "imr":
            continue  # source anchor at the start: covered by the next test
        editor.generator.zero_grad(set_to_none=True)
        value.backward(retain_graph=True)
        grads = [p.grad for p in editor.generator.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, name
        assert all(torch.isfinite(g).all() for g in grads), name


def test_imr_gradient_after_the_output_moved(tiny_clip, image_path, tmp_path):
    editor = _editor(tiny_clip, image_path, tmp_path, **{"loss.guidance": "geodesic", "loss.imr_anchor": "source"})
    terms, _, _ = step_losses(editor, [(editor.image, None)])
    editor.generator.zero_grad()
    terms["imr"].backward()
    assert terms["imr"].item() > 0
    assert sum(p.grad.abs().sum() for p in editor.generator.parameters() if p.grad is not None) > 0


def test_training_decreases_loss_and_writes_metrics(tiny_clip, image_path, tmp_path):
    overrides = tiny_overrides(image_path, "x", tmp_path, steps=12, **{"loss.guidance": "directional",
                                                                       "crops.full_image_every": 1,
                                                                       "optim.name": "adam", "optim.lr": 0.01,
                                                                       # the same 4 templates' count every step:
                                                                       # the reference's 1..all draw is noisier
                                                                       "text.template_sampling": "subset"})
    result = edit_image(None, overrides, clip_guide=tiny_clip, progress=False)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 13))
    first = sum(r["composition"] for r in records[:3]) / 3
    last = sum(r["composition"] for r in records[-3:]) / 3
    assert last < first


def test_same_seed_same_result(tiny_clip, image_path, tmp_path):
    runs = [edit_image(None, tiny_overrides(image_path, "x", tmp_path / str(i), steps=2), clip_guide=tiny_clip,
                       progress=False) for i in range(2)]
    assert torch.equal(runs[0].layers.composite, runs[1].layers.composite)


@pytest.mark.parametrize("anchor", ["previous", "source"])
def test_geodesic_run_for_each_imr_anchor(tiny_clip, image_path, tmp_path, anchor):
    overrides = tiny_overrides(image_path, "x", tmp_path, steps=5, **{"loss.guidance": "geodesic",
                                                                      "loss.imr_anchor": anchor})
    result = edit_image(None, overrides, clip_guide=tiny_clip, progress=False)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 5 and all("imc" in r and "imr" in r and "directional" not in r for r in records)
    assert all(torch.isfinite(torch.tensor(r["total"])) for r in records)
    for name in ("composite.png", "edit_layer.png", "alpha.png", "edit_on_greenscreen.png", "comparison.png"):
        assert (result.run_dir / name).is_file()
    state = torch.load(result.run_dir / "checkpoint.pt", weights_only=True)
    assert ("previous_generator" in state) == (anchor == "previous")


def test_previous_anchor_is_the_last_steps_generator(tiny_clip, image_path, tmp_path):
    editor = _editor(tiny_clip, image_path, tmp_path, **{"loss.guidance": "geodesic", "loss.imr_anchor": "previous"})
    # parameters only: batch-norm running buffers move during the forward and are not used
    # by the anchor, which renders with batch statistics
    before = {k: v.detach().clone() for k, v in editor.generator.named_parameters()}
    editor.training_step()
    anchor = dict(editor.previous_generator.named_parameters())
    assert all(torch.equal(anchor[k], before[k]) for k in before)
    assert any(not torch.equal(dict(editor.generator.named_parameters())[k], before[k]) for k in before)
    assert all(not p.requires_grad for p in editor.previous_generator.parameters())


def test_inversion_run_writes_outputs_and_changes_pixels(tiny_clip, image_path, tmp_path):
    overrides = tiny_overrides(image_path, "x", tmp_path, steps=5, mode="inversion",
                               **{"optim.name": "adam", "optim.lr": 0.05, "loss.guidance": "geodesic"})
    result = edit_image(None, overrides, clip_guide=tiny_clip, progress=False)
    assert (result.run_dir / "composite.png").is_file() and (result.run_dir / "comparison.png").is_file()
    change = (result.layers.composite - result.input_image).abs()
    assert change.max() > 0.05 and torch.equal(result.layers.alpha, torch.ones_like(result.layers.alpha))
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "sparsity" not in records[0] and "imc" in records[0]


@pytest.mark.parametrize("guidance", ["directional", "geodesic"])
def test_longer_run_total_loss_goes_down(tiny_clip, image_path, tmp_path, guidance):
    overrides = tiny_overrides(image_path, "x", tmp_path, steps=30, **{
        "loss.guidance": guidance, "loss.imr_anchor": "source", "crops.full_image_every": 1,
        "optim.name": "adam", "optim.lr": 0.01, "clip.n_aug": 8, "text.templates_per_step": 14, "snapshot_every": 0})
    result = edit_image(None, overrides, clip_guide=tiny_clip, progress=False)
    totals = [json.loads(line)["total"] for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sum(totals[-5:]) / 5 < sum(totals[:5]) / 5


def test_bf16_on_cpu_stays_finite_and_close_to_fp32(tiny_clip, image_path, tmp_path):
    results = {}
    for precision in ("fp32", "bf16"):
        overrides = tiny_overrides(image_path, "x", tmp_path / precision, steps=3, precision=precision,
                                   **{"loss.guidance": "directional"})
        run = edit_image(None, overrides, clip_guide=tiny_clip, progress=False)
        lines = (run.run_dir / "metrics.jsonl").read_text().splitlines()
        results[precision] = (run, [json.loads(line) for line in lines])
    for fp32, bf16 in zip(results["fp32"][1], results["bf16"][1]):
        assert torch.isfinite(torch.tensor(bf16["total"]))
        assert abs(fp32["total"] - bf16["total"]) < 0.05 * abs(fp32["total"]) + 0.02
    difference = (results["fp32"][0].layers.composite - results["bf16"][0].layers.composite).abs().mean()
    assert difference < 0.02
