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


def test_text_distance_uses_mean_template_embedding():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([[2 ** -0.5, 2 ** -0.5]])
    loss = TextDistanceLoss("cosine")(target.repeat(3, 1), text)
    assert abs(loss.item()) < 1e-6


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
