import math

import torch

from text2live_geo.losses import DirectionalLoss, TextDistanceLoss, cosine_distance, spherical_distance


def test_spherical_distance_closed_form():
    x = torch.tensor([[1.0, 0.0, 0.0]])
    assert spherical_distance(x, x).item() == 0
    y = torch.tensor([[0.0, 1.0, 0.0]])
    assert math.isclose(spherical_distance(x, y).item(), math.pi ** 2 / 8, rel_tol=1e-6)
    assert math.isclose(spherical_distance(x, -x).item(), math.pi ** 2 / 2, rel_tol=1e-6)
    assert math.isclose(cosine_distance(x, y).item(), 1.0)


def test_text_distance_reductions():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([[2 ** -0.5, 2 ** -0.5]])
    # mean_embedding: the distance to the normalised mean template, here the view itself
    assert abs(TextDistanceLoss("cosine", "mean_embedding")(target.repeat(3, 1), text).item()) < 1e-6
    # mean_distance (default, the reference's): the mean of the per-template distances, 1 - cos 45 deg
    loss = TextDistanceLoss("cosine")(target.repeat(3, 1), text)
    assert math.isclose(loss.item(), 1 - 2 ** -0.5, rel_tol=1e-6)
    torch.manual_seed(0)
    views, texts = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1), torch.randn(3, 8)
    expected = sum(spherical_distance(views[v], texts[t]) for v in range(5) for t in range(3)) / 15
    torch.testing.assert_close(TextDistanceLoss()(views, texts), expected)


def test_directional_zero_change_is_finite_and_one():
    image = torch.randn(4, 8, requires_grad=True)
    output = image.detach().clone().requires_grad_(True)
    loss = DirectionalLoss()(image.detach(), output, torch.randn(2, 8), torch.randn(2, 8))
    assert loss.item() == 1.0
    loss.backward()
    assert torch.isfinite(output.grad).all()


def test_directional_aligned_is_zero_and_opposite_is_two():
    source, direction = torch.randn(3, 8), torch.randn(1, 8)
    text_source = torch.randn(1, 8)
    loss = DirectionalLoss()
    assert abs(loss(source, source + direction, text_source, text_source + 2 * direction).item()) < 1e-6
    assert abs(loss(source, source - direction, text_source, text_source + direction).item() - 2) < 1e-6
