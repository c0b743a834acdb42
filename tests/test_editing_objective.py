import torch

from text2live_geo.common.config import load_config
from text2live_geo.config import ImageEditConfig
from text2live_geo.editing.objective import EditObjective, Render
from text2live_geo.layers import composite_layers


def make_renders(sizes, seed=0):
    torch.manual_seed(seed)
    renders, rgbas = [], []
    for height, width in sizes:
        source = torch.rand(1, 3, height, width)
        rgba = torch.rand(1, 4, height, width, requires_grad=True)
        rgbas.append(rgba)
        renders.append(Render(source, composite_layers(rgba, source), relevancy=torch.rand(1, 1, height, width)))
    return renders, rgbas


def record_clip_calls(clip, run):
    """Run `run()` and return the shapes of the batches `clip.encode_images` saw, and its result."""
    calls = []
    original = clip.encode_images
    clip.encode_images = lambda images, **kw: calls.append(tuple(images.shape)) or original(images, **kw)
    try:
        result = run()
    finally:
        del clip.encode_images
    return calls, result


def objective_for(tiny_clip, *overrides):
    # the project's own view and template recipe (configs/image/former_default.yaml), whose batch layout
    # these tests count; the reference recipe's keys have their own tests (test_reference_recipe.py)
    cfg = load_config(ImageEditConfig, None, ["image=x.png", "clip.n_aug=3", "loss.guidance=geodesic",
                                              "loss.imr_anchor=source", "clip.paired_views=true",
                                              "clip.encode_composite_twice=false", "text.template_sampling=subset",
                                              *overrides])
    return EditObjective(cfg.text, cfg.clip, cfg.loss, tiny_clip, torch.device("cpu"))


def test_batched_renders_of_one_size_share_one_clip_pass_each_way(tiny_clip):
    objective = objective_for(tiny_clip)
    renders, rgbas = make_renders([(40, 56), (40, 56), (40, 56)])
    calls, (terms, weights) = record_clip_calls(tiny_clip, lambda: objective.batched(renders, bootstrap_weight=1.0))
    assert calls == [(2 * 3 * 3, 3, 32, 44), (3 * 3, 3, 32, 44)]  # with gradient, then without
    assert set(terms) == set(weights) and {"imc", "imr", "bootstrap", "structure"} <= set(terms)
    total = sum(weights[name] * value for name, value in terms.items())
    total.backward()
    assert all(rgba.grad is not None and rgba.grad.abs().sum() > 0 for rgba in rgbas)


def test_each_render_keeps_its_aspect_one_pass_per_view_size(tiny_clip):
    # the tiny CLIP's view size is 32: (40, 40) -> 32 x 32, (36, 52) -> 32 x 46, (48, 30) -> 46 x 28
    # (long side capped at round(32 * 320 / 224) = 46, the short side shrinks)
    objective = objective_for(tiny_clip)
    renders, rgbas = make_renders([(40, 40), (36, 52), (48, 30), (40, 40)])
    calls, (terms, weights) = record_clip_calls(tiny_clip, lambda: objective.batched(renders))
    with_grad, without = calls[:3], calls[3:]
    assert sorted(with_grad) == sorted([(2 * 3 * 2, 3, 32, 32), (2 * 3, 3, 32, 46), (2 * 3, 3, 46, 28)])
    assert sorted(without) == sorted([(3 * 2, 3, 32, 32), (3, 3, 32, 46), (3, 3, 46, 28)])
    sum(weights[name] * value for name, value in terms.items()).backward()
    assert all(rgba.grad.abs().sum() > 0 for rgba in rgbas)
    # shared_view_size: every render at the first one's size, one pass each way
    objective = objective_for(tiny_clip, "clip.shared_view_size=true")
    renders, _ = make_renders([(40, 40), (36, 52), (48, 30)])
    calls, _ = record_clip_calls(tiny_clip, lambda: objective.batched(renders))
    assert calls == [(2 * 3 * 3, 3, 32, 32), (3 * 3, 3, 32, 32)]


def test_text_lists_pair_by_index_and_every_text_counts(tiny_clip):
    from text2live_geo.clip import IMAGE_TEMPLATES, SCREEN_TEMPLATES

    objective = objective_for(tiny_clip, "text.src=[red circle, circle]",
                              "text.comp=[blue circle, blue square, golden circle]", "text.screen=[blue, gold]",
                              "text.templates_per_step=3")
    assert objective.src_text.shape == (2, len(IMAGE_TEMPLATES), 32)
    assert objective.comp_text.shape == (3, len(IMAGE_TEMPLATES), 32)
    torch.manual_seed(4)
    rows = objective.template_rows()
    torch.manual_seed(4)
    texts = objective.step_texts()
    src, comp_pairs, comp_all, screen = texts.src, texts.comp, texts.comp_all, texts.screen
    embed = tiny_clip.text_embeddings
    # pairs: src[k] with comp[k] under the same template, k < 2, text-major
    expected_src = torch.stack([embed(text, IMAGE_TEMPLATES)[rows] for text in ("red circle", "circle")]).flatten(0, 1)
    expected_comp = torch.stack([embed(text, IMAGE_TEMPLATES)[rows]
                                 for text in ("blue circle", "blue square")]).flatten(0, 1)
    torch.testing.assert_close(src, expected_src)
    torch.testing.assert_close(comp_pairs, expected_comp)
    # composition: every comp text (the third has no src partner) under the drawn templates
    assert comp_all.shape == (3 * 3, 32)
    torch.testing.assert_close(comp_all[6:], embed("golden circle", IMAGE_TEMPLATES)[rows])
    # screen: every screen text under both screen templates
    torch.testing.assert_close(screen, torch.cat([embed(text, SCREEN_TEMPLATES) for text in ("blue", "gold")]))
    # one text each: as before, one row per drawn template
    single = objective_for(tiny_clip, "text.templates_per_step=3")
    texts = single.step_texts()
    src, comp_pairs, comp_all, screen = texts.src, texts.comp, texts.comp_all, texts.screen
    assert src.shape == comp_pairs.shape == comp_all.shape == (3, 32) and screen.shape == (2, 32)
    renders, rgbas = make_renders([(40, 40)])
    terms, weights = objective.batched(renders)
    sum(weights[name] * value for name, value in terms.items()).backward()
    assert rgbas[0].grad.abs().sum() > 0


def spy_calls(module):
    """Record the arguments of every call of `module` (an nn.Module), returning the list."""
    calls = []
    module.register_forward_hook(lambda _module, args, _output: calls.append(args))
    return calls


def test_text_reduction_key_chooses_the_composition_reduction(tiny_clip):
    from text2live_geo.losses import TextDistanceLoss

    assert objective_for(tiny_clip).composition_loss.reduction == "mean_distance"  # the reference's
    for reduction, other in (("mean_distance", "mean_embedding"), ("mean_embedding", "mean_distance")):
        objective = objective_for(tiny_clip, f"loss.text_reduction={reduction}", "loss.guidance=directional")
        assert objective.composition_loss.reduction == reduction
        calls = spy_calls(objective.composition_loss)
        terms, _ = objective.batched(make_renders([(40, 40)])[0])
        views, texts = calls[0]  # the composition call (the screen's comes second)
        torch.testing.assert_close(terms["composition"], TextDistanceLoss("spherical", reduction)(views, texts))
        assert not torch.allclose(terms["composition"], TextDistanceLoss("spherical", other)(views, texts))
