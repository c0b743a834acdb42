"""text2live_geo.editing.video: the editor's renders, training step, checkpoints, final render (tiny CPU models).

The sampler is tested in test_data_atlas_crops.py, the input preparation in test_editing_video_input.py."""
import dataclasses
import math

import pytest
import torch

from atlas import NeuralAtlas
from atlas.testing import make_tiny_atlas
from conftest import step_losses
from text2live_geo.common.config import load_config
from text2live_geo.common.runs import RunError, load_checkpoint, save_checkpoint
from text2live_geo.common.video_io import frames_as_float, frames_as_uint8, read_video
from text2live_geo.config import VideoEditConfig
from text2live_geo.editing.video import VideoEditor
from text2live_geo.editing.video_input import prepare_atlas_video

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # 24 x 16 px, 6 frames; frames 0, 1 and 5 have no foreground above alpha 0.95
    return make_tiny_atlas(tmp_path_factory.mktemp("tiny_atlas_video"), seed=3)


def video_config(tiny, **extra):
    values = {
        "video.frames": str(tiny.frames_folder), "atlas.checkpoint": str(tiny.folder), "atlas.resolution": 48,
        "clip.model": "unused", "text.src": "red circle", "text.comp": "blue circle", "text.screen": "blue circle",
        "generator.num_scales": 3, "generator.channels": 8, "clip.n_aug": 2, "device": "cpu", "steps": 3,
    }
    values.update(extra)
    return load_config(VideoEditConfig, None, [f"{k}={v}" for k, v in values.items()])


def make_editor(tiny, tiny_clip, frames=None, **extra):
    cfg = video_config(tiny, **extra)
    frames = tiny.frames if frames is None else frames
    torch.manual_seed(0)
    video = prepare_atlas_video(tiny.atlas, frames, cfg.layer, cfg.atlas, cfg.generator.num_scales, CPU)
    return VideoEditor(cfg, video, tiny_clip, CPU)


def set_constant_alpha(editor, logit: float) -> None:
    """Make the generator's alpha sigmoid(logit) everywhere (0 exactly for logit -1e4)."""
    with torch.no_grad():
        editor.generator.head.weight[3].zero_()
        editor.generator.head.bias[3] = logit


def test_video_config_defaults_are_the_video_recipe():
    cfg = load_config(VideoEditConfig, None, [])
    assert (cfg.loss.composition, cfg.loss.screen, cfg.loss.structure, cfg.loss.sparsity) == (1, 1, 3, 0.1)
    assert (cfg.loss.sparsity_l1, cfg.loss.sparsity_l0, cfg.loss.guidance) == (0.01, 0.005, "geodesic")
    assert (cfg.clip.n_aug, cfg.clip.fill, cfg.optim.name, cfg.optim.lr, cfg.optim.lr_decay, cfg.steps) == \
        (6, "black", "madgrad", 0.0025, 0.999, 3000)
    assert (cfg.crops.crop_min, cfg.crops.full_atlas_every, cfg.layer) == (0.95, 75, "foreground")


@pytest.mark.parametrize("layer", ["foreground", "background"])
def test_zero_alpha_edit_renders_the_reconstruction_unchanged(tiny, tiny_clip, layer):
    # the un-rounded NLA reconstruction as the "original video": the render must give it back
    reconstruction = tiny.atlas.reconstruct_frames()
    editor = make_editor(tiny, tiny_clip, frames=reconstruction, layer=layer)
    set_constant_alpha(editor, -1e4)
    assert torch.equal(editor.render_atlas().composite, editor.video.atlas_image)
    rendered = editor.render()
    assert rendered.shape == reconstruction.shape
    # the editor holds its frames in 8 bits: the render is them, to the half level of that rounding
    assert torch.allclose(rendered, frames_as_float(frames_as_uint8(reconstruction)), atol=1e-6)
    assert (rendered - reconstruction).abs().max() <= 0.5 / 255 + 1e-6
    # an opaque edit is visible exactly where the layer is: NLA alpha (fg) or 1 - NLA alpha (bg)
    set_constant_alpha(editor, 1e4)
    _, visible = editor.frame_edit(editor.render_atlas(), range(6))
    nla_alpha = editor.video.maps.frames(range(6)).alpha
    assert torch.allclose(visible, nla_alpha if layer == "foreground" else 1 - nla_alpha, atol=1e-6)


def test_sample_renders_line_up_with_the_atlas(tiny, tiny_clip):
    editor = make_editor(tiny, tiny_clip, layer="background", **{
        "atlas.resolution": 160, "crops.jitter_p": 0, "crops.flip_p": 0, "crops.full_atlas_every": 1})
    sample = editor.sampler.sample(0)
    editor.generator.train()
    with torch.no_grad():
        renders = editor.render_sample(editor.generator, sample)
    assert len(renders) == len(sample.frame_crops) + 2  # + direct frame crop + whole atlas
    for crop, render in zip(sample.frame_crops, renders):
        box = crop.box
        ys, xs = torch.meshgrid(torch.arange(box.top, box.bottom), torch.arange(box.left, box.right), indexing="ij")
        with torch.no_grad():
            query = tiny.atlas.query(xs.flatten().float(), ys.flatten().float(),
                                     torch.full((xs.numel(),), float(crop.frame)))
        expected = query.rgb_background.T.reshape(1, 3, box.height, box.width)
        assert (render.source - expected).abs().max() < 0.03  # the baked atlas crop, sampled at the crop's uv
        assert render.layers.composite.shape == render.source.shape == crop.image.shape
    # the direct frame crop shows the background layer as NLA reconstructs it, the baked atlas at its uv
    crop = sample.direct_crop
    assert crop in sample.frame_crops and torch.equal(renders[-2].source, sample.direct_input)
    direct_expected = renders[sample.frame_crops.index(crop)].source
    assert torch.allclose(sample.direct_input, direct_expected, atol=1e-6)
    # the background's whole atlas, downscaled 3x (bilinear, antialiased)
    atlas = editor.video.atlas_image
    assert renders[-1].source.shape[-2:] == (atlas.shape[-2] // 3, atlas.shape[-1] // 3)
    assert torch.equal(renders[-1].source, editor.whole_atlas)
    # flipping: the frame-space renders are mirrored with the generator's input
    with torch.no_grad():
        flipped = editor.render_sample(editor.generator, dataclasses.replace(sample, flipped=True))
    for plain, mirrored in zip(renders[:-1], flipped[:-1]):
        assert torch.allclose(mirrored.source, plain.source.flip(-1))


@pytest.mark.parametrize("layer", ["foreground", "background"])
def test_both_layers_train_with_finite_losses(tiny, tiny_clip, layer):
    editor = make_editor(tiny, tiny_clip, layer=layer, **{"crops.full_atlas_every": 2})
    before = [p.detach().clone() for p in editor.generator.parameters()]
    records = [editor.training_step() for _ in range(3)]
    assert editor.step == 3
    for record in records:
        assert {"composition", "imc", "imr", "screen", "structure", "sparsity", "total"} <= set(record)
        assert all(math.isfinite(value) for value in record.values())
    assert records[0]["renders"] >= 3  # >= 1 frame crop, the direct frame crop, the whole atlas (step 0)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, editor.generator.parameters()))
    assert changed == len(before)
    assert editor.previous_generator is not None  # geodesic guidance with the previous-step anchor


def test_every_loss_reaches_the_generator_with_bootstrap(tiny, tiny_clip):
    editor = make_editor(tiny, tiny_clip, **{"text.bootstrap": "red circle", "loss.guidance": "directional"})
    assert editor.atlas_relevancy is not None
    assert editor.atlas_relevancy.shape[-2:] == editor.video.atlas_image.shape[-2:]
    editor.generator.train()
    terms, weights, renders = step_losses(editor, editor.sampler.sample(1))
    assert set(terms) == {"composition", "directional", "screen", "structure", "sparsity", "bootstrap"}
    assert all(render.relevancy is not None for render in renders)
    for name, value in terms.items():
        editor.generator.zero_grad(set_to_none=True)
        value.backward(retain_graph=True)
        grads = [p.grad for p in editor.generator.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, name


@pytest.mark.parametrize("frames, layer", [(1, "background"), (3, "foreground"), (5, "foreground")])
def test_short_videos_sample_and_step(tmp_path, tiny_clip, frames, layer):
    short = make_tiny_atlas(tmp_path / "short", frames=frames, foreground_fades=False, seed=1)
    editor = make_editor(short, tiny_clip, layer=layer, **{"crops.full_atlas_every": 0, "clip.n_aug": 1})
    assert editor.sampler.gap == min(2, (frames - 1) // 2)
    for step in range(4):
        sample = editor.sampler.sample(step)
        assert 1 <= len(sample.frame_crops) <= min(3, frames)
    assert math.isfinite(editor.training_step()["total"])


def test_checkpoint_round_trip_continues_identically(tiny, tiny_clip, tmp_path):
    first = make_editor(tiny, tiny_clip, **{"crops.full_atlas_every": 0})
    first.training_step()
    (tmp_path / "config.yaml").write_text("")
    save_checkpoint(tmp_path, first.state_dict())  # state_dict() tensors alias the live ones
    state = load_checkpoint(tmp_path, CPU)  # weights_only, as --resume loads it
    second = make_editor(tiny, tiny_clip, **{"crops.full_atlas_every": 0})
    torch.set_rng_state(state["torch_rng"])  # building `second` drew from the global RNG
    expected = first.training_step()
    second.load_state_dict(state)  # restores the RNG too
    assert second.step == 1
    assert second.training_step() == pytest.approx(expected, rel=1e-5)
    other = make_editor(tiny, tiny_clip, layer="background")
    with pytest.raises(RunError, match="layer"):
        other.load_state_dict(state)


def test_read_tiny_frames_match_the_atlas(tiny):
    video, notes = read_video(tiny.frames_folder)
    assert notes == [] and video.fps is None
    assert torch.equal(video.frames, tiny.frames.float())
    assert isinstance(tiny.atlas, NeuralAtlas) and tiny.atlas.num_frames == video.num_frames


def foreground_sample(tiny, tiny_clip, **extra):
    editor = make_editor(tiny, tiny_clip, **{"crops.jitter_p": 0, "crops.flip_p": 0, **extra})
    editor.generator.train()
    torch.manual_seed(5)
    return editor, editor.sampler.sample(1)


def test_direct_frame_crop_sees_the_layer_and_its_output_times_the_alpha(tiny, tiny_clip):
    # reference (direct_frame_input=layer, default): the generator sees x = frame x NLA alpha; its
    # RGBA times the alpha is composited over x
    editor, sample = foreground_sample(tiny, tiny_clip)
    crop = sample.direct_crop
    alpha = crop.nla_alpha
    torch.testing.assert_close(sample.direct_input, crop.image * alpha)
    seen = []
    editor.generator.register_forward_hook(lambda _m, args, out: seen.append((args[0], out)))
    with torch.no_grad():
        render = editor.render_sample(editor.generator, sample)[len(sample.frame_crops)]
    generator_input, rgba = seen[-1]
    assert torch.equal(generator_input, sample.direct_input)
    x, edit, a = sample.direct_input, rgba[:, :3] * alpha, rgba[:, 3:] * alpha
    assert torch.equal(render.source, x)
    torch.testing.assert_close(render.layers.alpha, a)
    torch.testing.assert_close(render.layers.composite, (1 - a) * x + a * edit)
    # frame: the raw frame crop through the generator, rendered as the layer seen in the frame
    editor, sample = foreground_sample(tiny, tiny_clip, **{"crops.direct_frame_input": "frame"})
    assert sample.direct_input is None
    seen = []
    editor.generator.register_forward_hook(lambda _m, args, out: seen.append(args[0]))
    with torch.no_grad():
        render = editor.render_sample(editor.generator, sample)[len(sample.frame_crops)]
    assert torch.equal(seen[-1], sample.direct_crop.image)
    torch.testing.assert_close(render.source, sample.direct_crop.image * sample.direct_crop.nla_alpha)


def test_direct_frame_crop_is_a_random_frame_of_the_step(tiny, tiny_clip):
    editor = make_editor(tiny, tiny_clip, **{"crops.full_atlas_every": 0})
    frames, positions = set(), set()
    for step in range(1, 40):
        sample = editor.sampler.sample(step)
        frames.add(sample.direct_crop.frame)
        positions.add(sample.frame_crops.index(sample.direct_crop))
    assert frames == {2, 3, 4} and len(positions) >= 2


@pytest.mark.parametrize("mask", [True, False])
def test_mask_frame_source_key(tiny, tiny_clip, mask):
    # the foreground's frame-crop renders: the loss source is the resampled atlas crop, times the
    # NLA alpha like the layers (true, ours) or as it is (false, the reference's)
    editor, sample = foreground_sample(tiny, tiny_clip, **{"crops.mask_frame_source": mask})
    with torch.no_grad():
        renders = editor.render_sample(editor.generator, sample)
        unmasked = make_editor(tiny, tiny_clip, **{"crops.mask_frame_source": False})
        unmasked.generator.load_state_dict(editor.generator.state_dict())
        reference = unmasked.render_sample(unmasked.generator, sample)
    for crop, render, plain in zip(sample.frame_crops, renders, reference):
        expected = plain.source * crop.nla_alpha if mask else plain.source
        torch.testing.assert_close(render.source, expected)
        torch.testing.assert_close(render.layers.composite, plain.layers.composite)  # the layers: times alpha always
    assert not torch.allclose(reference[0].source, reference[0].source * sample.frame_crops[0].nla_alpha)


def test_background_atlas_downscale_key(tiny, tiny_clip):
    size = make_editor(tiny, tiny_clip, layer="background", **{"atlas.resolution": 160}).video.atlas_image.shape[-2:]
    for layer, factor, expected in (("background", 3, 3), ("background", 1, 1), ("background", 50, None),
                                    ("foreground", 3, 1)):
        editor = make_editor(tiny, tiny_clip, layer=layer, **{"atlas.resolution": 160,
                                                              "crops.background_atlas_downscale": factor})
        height, width = editor.video.atlas_image.shape[-2:]
        if expected is None:  # as far as the generator's minimum side allows
            expected = min(height, width) // editor.generator.min_size
        assert editor.whole_atlas.shape[-2:] == (height // expected, width // expected)
        assert min(editor.whole_atlas.shape[-2:]) >= editor.generator.min_size
    assert size[0] // 3 >= 9  # the tiny atlas allows the reference's factor


def test_whole_atlas_max_pixels_bounds_the_whole_atlas_sample(tiny, tiny_clip):
    import torch.nn.functional as F

    free = make_editor(tiny, tiny_clip, **{"atlas.resolution": 160, "crops.whole_atlas_max_pixels": 0})
    height, width = free.video.atlas_image.shape[-2:]
    assert free.whole_atlas.shape[-2:] == (height, width)  # 0: no limit, the foreground's sample is the region
    min_side = free.generator.min_size
    for max_pixels in (height * width // 3, height * width // 10, 1):
        editor = make_editor(tiny, tiny_clip, **{"atlas.resolution": 160, "crops.whole_atlas_max_pixels": max_pixels})
        bounded_h, bounded_w = editor.whole_atlas.shape[-2:]
        assert min(bounded_h, bounded_w) >= min_side
        if max_pixels > 1:  # the region is large enough for these bounds: they are met, not held up by the minimum side
            assert min(bounded_h, bounded_w) > min_side
            assert bounded_h * bounded_w <= max_pixels
            assert (bounded_h + 1) * (bounded_w + 1) > max_pixels  # as large as fits (one scale, floored)
        assert abs(bounded_w / bounded_h - width / height) < 2 / min(bounded_h, bounded_w)  # the aspect kept
        # the region itself, downscaled (bilinear, antialiased), not a crop of it
        expected = F.interpolate(editor.video.atlas_image, size=(bounded_h, bounded_w), mode="bilinear",
                                 align_corners=False, antialias=True).clamp(0, 1)
        torch.testing.assert_close(editor.whole_atlas, expected)
    assert min(editor.whole_atlas.shape[-2:]) == min_side  # 1 pixel: as far as the minimum side allows
    # the shipped bound leaves a region under it as it is
    assert make_editor(tiny, tiny_clip, **{"atlas.resolution": 160}).whole_atlas.shape[-2:] == (height, width)
