import torch

from text2live_geo.config import ImageEditConfig, load_config
from text2live_geo.editing.objective import EditObjective, Render
from text2live_geo.layers import composite_layers


def test_batched_renders_share_one_clip_pass_each_way(tiny_clip):
    cfg = load_config(ImageEditConfig, None, ["image=x.png", "clip.n_aug=3", "loss.imr_anchor=source"])
    objective = EditObjective(cfg.text, cfg.clip, cfg.loss, tiny_clip, torch.device("cpu"))
    torch.manual_seed(0)
    renders, rgbas = [], []
    for height, width in ((40, 40), (36, 52), (48, 30)):  # different sizes and aspect ratios
        source = torch.rand(1, 3, height, width)
        rgba = torch.rand(1, 4, height, width, requires_grad=True)
        rgbas.append(rgba)
        renders.append(Render(source, composite_layers(rgba, source), relevancy=torch.rand(1, 1, height, width)))
    calls = []
    original = tiny_clip.encode_images
    tiny_clip.encode_images = lambda images, **kw: calls.append(images.shape) or original(images, **kw)
    try:
        terms, weights = objective.batched(renders, bootstrap_weight=1.0)
    finally:
        del tiny_clip.encode_images
    assert len(calls) == 2 and calls[0][0] == 2 * 3 * 3 and calls[1][0] == 3 * 3
    assert set(terms) == set(weights) and {"imc", "imr", "bootstrap", "structure"} <= set(terms)
    total = sum(weights[name] * value for name, value in terms.items())
    total.backward()
    assert all(rgba.grad is not None and rgba.grad.abs().sum() > 0 for rgba in rgbas)
