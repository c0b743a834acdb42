import torch

from text2live_geo.config import ImageEditConfig, load_config
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
    cfg = load_config(ImageEditConfig, None, ["image=x.png", "clip.n_aug=3", "loss.imr_anchor=source", *overrides])
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
