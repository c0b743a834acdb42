"""The config keys that reproduce the Text2LIVE reference recipe where ours deliberately differs
(docs/deviations.md), one test each, and the reference configs that set them."""
from pathlib import Path

import pytest
import torch

from conftest import step_losses, tiny_overrides
from text2live_geo.common.config import load_config
from text2live_geo.config import ImageEditConfig, VideoEditConfig
from text2live_geo.editing.objective import EditObjective, Render
from text2live_geo.layers import composite_layers
from text2live_geo.losses import BootstrapLoss, DirectionalLoss

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def objective_for(tiny_clip, *overrides):
    cfg = load_config(ImageEditConfig, None, ["image=x.png", "clip.n_aug=4", "loss.imr_anchor=source", *overrides])
    return EditObjective(cfg.text, cfg.clip, cfg.loss, tiny_clip, CPU)


def unchanged_render(height=40, width=48, seed=0):
    """A render whose composite is the input itself (zero alpha)."""
    torch.manual_seed(seed)
    source = torch.rand(1, 3, height, width)
    rgba = torch.cat([torch.rand(1, 3, height, width), torch.zeros(1, 1, height, width)], 1).requires_grad_(True)
    return Render(source, composite_layers(rgba, source), relevancy=torch.rand(1, 1, height, width)), rgba


def spy_calls(module):
    calls = []
    module.register_forward_hook(lambda _module, args, _output: calls.append(args))
    return calls


# ------------------------------------------------------------------ clip.paired_views
def test_paired_views_key(tiny_clip):
    render, _ = unchanged_render()
    size = (32, 38)
    torch.manual_seed(1)
    paired = objective_for(tiny_clip, "clip.paired_views=true", "clip.encode_composite_twice=false").draw_views(
        render, size)
    assert torch.equal(paired["input"], paired["composite"])  # one draw: the views differ by the edit only
    torch.manual_seed(1)
    unpaired = objective_for(tiny_clip, "clip.paired_views=false", "clip.encode_composite_twice=false").draw_views(
        render, size)
    assert set(unpaired) == {"input", "composite", "screen"}
    assert not torch.allclose(unpaired["input"], unpaired["composite"])  # each image its own draw
    # so with no edit at all the directional loss is exactly 1 only with paired views
    for paired_views, exactly_one in ((True, True), (False, False)):
        objective = objective_for(tiny_clip, f"clip.paired_views={paired_views}", "loss.guidance=directional",
                                  "clip.encode_composite_twice=false", "text.template_sampling=subset")
        terms, _ = objective.batched([render])
        assert (terms["directional"].item() == pytest.approx(1.0, abs=1e-6)) == exactly_one


# ------------------------------------------------------------------ clip.encode_composite_twice
def test_encode_composite_twice_key(tiny_clip):
    render, _ = unchanged_render()
    torch.manual_seed(2)
    views = objective_for(tiny_clip, "clip.encode_composite_twice=true", "clip.paired_views=true").draw_views(
        render, (32, 38))
    assert set(views) == {"input", "composite", "screen", "composite_dir"}
    assert torch.equal(views["composite_dir"], views["input"])  # the directional draw is paired
    assert not torch.allclose(views["composite"], views["composite_dir"])  # composition: a draw of its own
    for twice, rows in ((False, 2 * 4), (True, 3 * 4)):  # composite (+ again) + screen views with gradient
        objective = objective_for(tiny_clip, f"clip.encode_composite_twice={twice}", "loss.guidance=directional",
                                  "clip.paired_views=true", "text.template_sampling=subset")
        assert encoded_batches(tiny_clip, objective.batched, [render]) == [rows, 4]


def encoded_batches(clip, run, *args):
    """The batch sizes `clip.encode_images` saw while `run(*args)` ran."""
    calls = []
    original = clip.encode_images
    clip.encode_images = lambda images, **kw: calls.append(images.shape[0]) or original(images, **kw)
    try:
        run(*args)
    finally:
        del clip.encode_images
    return calls


# ------------------------------------------------------------------ text.template_sampling
def test_template_sampling_key(tiny_clip):
    objective = objective_for(tiny_clip, "text.template_sampling=reference", "text.src=[red circle, circle]",
                              "text.comp=[blue circle, blue square, gold]", "text.screen=[blue]")
    pair_rows = objective.src_text[:2].flatten(0, 1)
    comp_rows = objective.comp_text.flatten(0, 1)
    counts = {"pairs": set(), "comp": set(), "screen": set()}
    torch.manual_seed(3)
    for _ in range(60):
        texts = objective.step_texts()
        counts["pairs"].add(len(texts.src))
        counts["comp"].add(len(texts.comp_all))
        counts["screen"].add(len(texts.screen))
        # each drawn pair is one (text, template) row of src with the same row of comp
        index = [int((pair_rows == row).all(-1).nonzero()[0]) for row in texts.src]
        torch.testing.assert_close(texts.comp, objective.comp_text[:2].flatten(0, 1)[index])
        assert all((comp_rows == row).all(-1).any() for row in texts.comp_all)
    # the counts are uniform in 1..rows, each term its own: 28 pair rows, 42 comp rows, 2 screen rows
    assert max(counts["pairs"]) <= 28 and max(counts["comp"]) <= 42 and counts["screen"] == {1, 2}
    assert len(counts["pairs"]) > 10 and len(counts["comp"]) > 10 and max(counts["comp"]) > 28
    subset = objective_for(tiny_clip, "text.template_sampling=subset").step_texts()
    assert len(subset.src) == len(subset.comp_all) == 4  # text.templates_per_step


# ------------------------------------------------------------------ loss.directional_pairs
def test_directional_pairs_key(tiny_clip):
    torch.manual_seed(4)
    source, output = torch.randn(6, 8), torch.randn(6, 8)
    text_source, text_target = torch.randn(3, 8), torch.randn(3, 8)
    unit = torch.nn.functional.normalize
    image_direction, text_direction = unit(output - source, dim=-1), unit(text_target - text_source, dim=-1)
    all_pairs = 1 - sum(image_direction[i] @ text_direction[j] for i in range(6) for j in range(3)) / 18
    by_index = 1 - sum(image_direction[i] @ text_direction[i % 3] for i in range(6)) / 6
    torch.testing.assert_close(DirectionalLoss(pairs="all")(source, output, text_source, text_target), all_pairs)
    torch.testing.assert_close(DirectionalLoss()(source, output, text_source, text_target), by_index)
    assert objective_for(tiny_clip, "loss.directional_pairs=index").directional_loss.pairs == "index"
    assert objective_for(tiny_clip, "loss.directional_pairs=all").directional_loss.pairs == "all"


# ------------------------------------------------------------------ loss.raw_directions
def test_raw_directions_key(tiny_clip):
    torch.manual_seed(5)
    source = torch.rand(1, 3, 40, 48)
    render = Render(source, composite_layers(torch.rand(1, 4, 40, 48), source))
    norms = {}
    for raw in (False, True):
        objective = objective_for(tiny_clip, "loss.guidance=directional", f"loss.raw_directions={raw}",
                                  "text.template_sampling=subset")
        calls = spy_calls(objective.directional_loss)
        composition = spy_calls(objective.composition_loss)
        objective.batched([render])
        image_source, image_output, text_source, text_target = calls[0]
        norms[raw] = (image_source.norm(dim=-1), text_source.norm(dim=-1))
        # the other terms keep unit embeddings either way
        torch.testing.assert_close(composition[0][0].norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(norms[False][0], torch.ones(4))
    torch.testing.assert_close(norms[False][1], torch.ones(4))
    assert not torch.allclose(norms[True][0], torch.ones(4)) and not torch.allclose(norms[True][1], torch.ones(4))


# ------------------------------------------------------------------ loss.relevancy_per_crop
def test_relevancy_per_crop_key(tiny_clip, image_path, tmp_path):
    objective = objective_for(tiny_clip, "loss.relevancy_per_crop=true", "text.bootstrap=red circle")
    render, rgba = unchanged_render(36, 52)
    render.relevancy = None  # per crop: no precomputed target
    calls = spy_calls(objective.bootstrap_loss)
    terms, weights = objective.batched([render], bootstrap_weight=2.0)
    alpha, target = calls[0]
    assert alpha.shape == target.shape == (1, 1, 32, 32)  # the reference's square 224 x 224, here 32 x 32
    square = torch.nn.functional.interpolate(render.source, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(target, tiny_clip.relevancy(square, "red circle"))
    torch.testing.assert_close(terms["bootstrap"], BootstrapLoss()(alpha, target))
    assert weights["bootstrap"] == 2.0
    # the image editor then keeps no whole-image map, yet bootstraps
    from text2live_geo.common.io import read_image
    from text2live_geo.editing.image import ImageEditor

    image, _ = read_image(image_path)
    for per_crop in (False, True):
        cfg = load_config(ImageEditConfig, None, tiny_overrides(
            image_path, "unused", tmp_path, **{"text.bootstrap": "red square", "loss.relevancy_per_crop": per_crop}))
        editor = ImageEditor(cfg, image, tiny_clip, CPU)
        assert (editor.relevancy is None) == per_crop and editor.has_bootstrap_target()
        terms, _, _ = step_losses(editor, [(editor.image, editor.relevancy)])
        assert "bootstrap" in terms


# ------------------------------------------------------------------ loss.bootstrap_schedule
def test_bootstrap_schedule_key(tiny_clip, image_path, tmp_path):
    from text2live_geo.common.io import read_image
    from text2live_geo.editing.image import ImageEditor

    image, _ = read_image(image_path)
    weights = {}
    for schedule in ("linear", "constant"):
        cfg = load_config(ImageEditConfig, None, tiny_overrides(image_path, "unused", tmp_path, **{
            "text.bootstrap": "red square", "loss.bootstrap_schedule": schedule, "loss.bootstrap_steps": 10}))
        editor = ImageEditor(cfg, image, tiny_clip, CPU)
        weights[schedule] = [editor.bootstrap_weight(step) for step in range(12)]
    # the reference's linear schedule: 10 (1 - (step + 1) / 10) while step < 10, then nothing
    assert weights["linear"] == pytest.approx([10 * (1 - (s + 1) / 10) for s in range(10)] + [0, 0])
    assert weights["constant"] == [10.0] * 10 + [0.0, 0.0]


# ------------------------------------------------------------------ crops.resize_upscale
def test_resize_upscale_key():
    from text2live_geo.editing.image import prepare_input

    small, large = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 300, 400)
    assert prepare_input(small, 100, 9, "x").shape[-2:] == (48, 64)  # ours: never upscaled
    assert prepare_input(small, 100, 9, "x", upscale=True).shape[-2:] == (100, 133)  # reference: Resize(100)
    for upscale in (False, True):
        assert prepare_input(large, 100, 9, "x", upscale=upscale).shape[-2:] == (100, 133)
    cfg = load_config(ImageEditConfig, None, ["crops.resize_upscale=true"])
    assert cfg.crops.resize_upscale and not load_config(ImageEditConfig).crops.resize_upscale


# ------------------------------------------------------------------ crops.full_image_extra
def test_full_image_extra_key(tiny_clip, image_path, tmp_path):
    from text2live_geo.common.io import read_image
    from text2live_geo.data.image_crops import CropSampler
    from text2live_geo.editing.image import ImageEditor

    source = torch.rand(1, 3, 40, 60)
    for extra in (False, True):
        cfg = load_config(ImageEditConfig, None, [f"crops.full_image_extra={extra}", "crops.full_image_every=3"]).crops
        sampler = CropSampler(source, cfg, min_size=9)
        for step in range(7):
            samples = sampler.samples(step)
            if step % 3:
                assert len(samples) == 1 and samples[0] is not source
            elif extra:  # the crop, then the whole image
                assert len(samples) == 2 and samples[0] is not source and samples[1] is source
            else:
                assert len(samples) == 1 and samples[0] is source
    image, _ = read_image(image_path)
    cfg = load_config(ImageEditConfig, None, tiny_overrides(image_path, "unused", tmp_path, **{
        "crops.full_image_extra": True, "crops.full_image_every": 2}))
    editor = ImageEditor(cfg, image, tiny_clip, CPU)
    assert [editor.training_step()["renders"] for _ in range(3)] == [2, 1, 2]


# ------------------------------------------------------------------ the reference configs
def test_reference_configs_set_the_reference_recipe():
    image = load_config(ImageEditConfig, ROOT / "configs/image/text2live_reference.yaml",
                        base_path=ROOT / "configs/image/base.yaml")
    video = load_config(VideoEditConfig, ROOT / "configs/video/text2live_reference.yaml",
                        base_path=ROOT / "configs/video/base.yaml")
    for cfg in (image, video):
        assert cfg.loss.guidance == "directional"
        assert not cfg.clip.paired_views and cfg.clip.encode_composite_twice
        assert cfg.text.template_sampling == "reference"
        assert cfg.loss.directional_pairs == "all" and cfg.loss.raw_directions and cfg.loss.relevancy_per_crop
        assert cfg.loss.text_reduction == "mean_distance" and cfg.generator.inv_colour_scale == 1.6
    assert image.crops.resize_upscale and image.crops.full_image_extra
    assert (image.loss.composition, image.loss.directional, image.loss.structure, image.loss.sparsity) == (1, 1, 2, 6)
    assert video.crops.direct_frame_input == "layer" and not video.crops.mask_frame_source
    assert video.crops.background_atlas_downscale == 3 and video.loss.bootstrap_schedule == "constant"
    assert video.crops.whole_atlas_max_pixels == 0  # the whole-atlas sample unbounded, as the reference
    assert (video.loss.structure, video.loss.sparsity, video.loss.sparsity_l0, video.optim.lr_decay) == \
        (3, 0.1, 0.005, 0.999)


# ------------------------------------------------------------------ the example edits
REFERENCE_VIDEO_EDITS = ("blackswan_crochet", "blackswan_crystal", "blackswan_cube", "blackswan_gold",
                         "car_turn_nighttime", "car_turn_rusty", "car_turn_winter", "libby_diamond", "libby_giraffe",
                         "libby_gold", "libby_leopard", "lucia_fog", "lucia_winter", "lucia_wonderland")


@pytest.mark.parametrize("recipe", [[], ["text2live_reference.yaml"]])
def test_example_edits_load_alone_and_after_the_reference_recipe(recipe):
    for kind, schema, names in (("image", ImageEditConfig, ("golden_horse", "ice_cake")),
                                ("video", VideoEditConfig, REFERENCE_VIDEO_EDITS)):
        folder = ROOT / "configs" / kind
        for name in names:
            cfg = load_config(schema, [folder / path for path in recipe] + [folder / f"{name}.yaml"],
                              base_path=folder / "base.yaml")
            assert cfg.text.src and cfg.text.comp and cfg.text.screen
            # images default to directional guidance (the SP benchmark's rule), videos to geodesic;
            # the reference recipe is directional for both
            assert (cfg.loss.guidance == "directional") == (bool(recipe) or kind == "image")
    winter = load_config(VideoEditConfig, ROOT / "configs/video/lucia_winter.yaml")
    assert winter.text.src == ["park", "city park"] and len(winter.text.comp) == len(winter.text.screen) == 3
    assert winter.layer == "background" and winter.video.max_frames == 70
    rusty = load_config(VideoEditConfig, ROOT / "configs/video/car_turn_rusty.yaml")
    assert (rusty.text.bootstrap, rusty.loss.bootstrap_steps) == ("car", 3000)
    assert rusty.loss.bootstrap_schedule == "constant"  # the video default, as the reference's
    horse = load_config(ImageEditConfig, ROOT / "configs/image/golden_horse.yaml")
    assert (horse.text.src, horse.text.comp, horse.text.bootstrap) == (["horse"], ["golden horse"], "horse")


def test_cli_merges_repeated_configs_in_order(tmp_path):
    from text2live_geo.apps.cli import edit_parser

    args = edit_parser("d", "e", "base", "p").parse_intermixed_args(
        ["--config", "a.yaml", "steps=3", "--config", "b.yaml"])
    assert args.config == ["a.yaml", "b.yaml"] and args.overrides == ["steps=3"]
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("steps: 5\nseed: 1\n")
    second.write_text("steps: 7\n")
    cfg = load_config(ImageEditConfig, [first, second], ["seed=2"])
    assert (cfg.steps, cfg.seed) == (7, 2)


# ------------------------------------------------------------------ whole runs with the reference recipe
def test_image_edit_runs_with_the_reference_recipe(tiny_clip_dir, image_path, tmp_path):
    import json
    import math

    from text2live_geo.editing.image import edit_image

    # the run loads its own CLIP, as a user's does, so its text tower is released after set-up:
    # the per-crop relevancy's text must have been embedded before that
    overrides = tiny_overrides(image_path, tiny_clip_dir, tmp_path, steps=3, **{
        "text.bootstrap": "red square", "crops.full_image_every": 2, "crops.resize_short": 64,
        "loss.bootstrap_steps": 3})
    result = edit_image([ROOT / "configs/image/text2live_reference.yaml"], overrides, progress=False,
                        base_config=ROOT / "configs/image/base.yaml")
    assert result.input_image.shape[-2:] == (64, 85)  # 48 x 64 upscaled to short side 64
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"composition", "directional", "screen", "structure", "sparsity", "bootstrap"} <= set(records[0])
    assert "imc" not in records[0] and all(math.isfinite(r["total"]) for r in records)


def test_video_edit_steps_with_the_reference_recipe(tmp_path, tiny_clip):
    import math

    from atlas.testing import make_tiny_atlas
    from text2live_geo.editing.video import VideoEditor
    from text2live_geo.editing.video_input import prepare_atlas_video

    tiny = make_tiny_atlas(tmp_path / "atlas", width=32, height=24, frames=6, foreground_fades=False, seed=1)
    for layer in ("foreground", "background"):
        cfg = load_config(VideoEditConfig, ROOT / "configs/video/text2live_reference.yaml", [
            f"video.frames={tiny.frames_folder}", f"atlas.checkpoint={tiny.folder}", "atlas.resolution=96",
            "text.src=red circle", "text.comp=blue circle", "text.screen=blue circle", "text.bootstrap=red circle",
            "generator.num_scales=3", "generator.channels=8", "clip.n_aug=2", "device=cpu",
            "crops.full_atlas_every=1", f"layer={layer}"], base_path=ROOT / "configs/video/base.yaml")
        torch.manual_seed(0)
        video = prepare_atlas_video(tiny.atlas, tiny.frames, cfg.layer, cfg.atlas, cfg.generator.num_scales, CPU)
        editor = VideoEditor(cfg, video, tiny_clip, CPU)
        assert editor.atlas_relevancy is None and editor.has_bootstrap_target()  # per crop
        records = [editor.training_step() for _ in range(2)]
        assert all("bootstrap" in r and "directional" in r and math.isfinite(r["total"]) for r in records)
        assert records[0]["renders"] >= 3


# ------------------------------------------------------------------ text.bootstrap_fallback
def test_bootstrap_fallback_uses_the_source_text(tiny_clip, image_path, tmp_path):
    """Without a bootstrap text there is no bootstrap loss unless `text.bootstrap_fallback=src`:
    then the target is the relevancy of `text.src[0]`, the same map as giving it as the bootstrap text."""
    from text2live_geo.common.io import read_image
    from text2live_geo.config import BootstrapFallback
    from text2live_geo.editing.image import ImageEditor

    image, _ = read_image(image_path)
    source_text = "red square"

    def editor(**keys):
        # one whole-image relevancy map (not per crop), so the two targets can be compared
        cfg = load_config(ImageEditConfig, None, tiny_overrides(image_path, "unused", tmp_path, **{
            "text.src": source_text, "loss.relevancy_per_crop": False, **keys}))
        return ImageEditor(cfg, image, tiny_clip, CPU)

    assert load_config(ImageEditConfig).text.bootstrap_fallback is BootstrapFallback.src  # the layer rule's default
    off = editor(**{"text.bootstrap_fallback": "none"})
    assert not off.has_bootstrap_target() and off.relevancy is None and off.bootstrap_weight(0) == 0
    fallback = editor(**{"text.bootstrap_fallback": "src"})
    explicit = editor(**{"text.bootstrap": source_text})
    assert fallback.has_bootstrap_target() and fallback.bootstrap_weight(0) > 0
    assert torch.equal(fallback.relevancy, explicit.relevancy)
    # a bootstrap text given wins over the fallback
    other = editor(**{"text.bootstrap_fallback": "src", "text.bootstrap": "blue circle"})
    assert other.cfg.text.relevancy_text() == "blue circle"
