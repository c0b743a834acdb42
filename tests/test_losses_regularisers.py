import math

import torch

from text2live_geo.losses import BootstrapLoss, SparsityLoss, pseudo_l0


def test_pseudo_l0_closed_form():
    assert pseudo_l0(torch.zeros(1, 1, 4, 4)).item() == 0
    expected = 2 * (1 / (1 + math.exp(-5)) - 0.5)
    assert math.isclose(pseudo_l0(torch.ones(1, 1, 4, 4)).item(), expected, rel_tol=1e-6)


def test_sparsity_weights():
    alpha = torch.full((1, 1, 2, 2), 0.5)
    value = SparsityLoss(0.01, 0.02)(alpha).item()
    assert math.isclose(value, 0.01 * 0.5 + 0.02 * pseudo_l0(alpha).item(), rel_tol=1e-6)


def test_bootstrap_mse_and_target_is_detached():
    alpha = torch.full((1, 1, 2, 2), 0.25, requires_grad=True)
    relevancy = torch.ones(1, 1, 2, 2, requires_grad=True)
    loss = BootstrapLoss()(alpha, relevancy)
    loss.backward()
    assert math.isclose(loss.item(), 0.75 ** 2)
    assert relevancy.grad is None and alpha.grad.abs().sum() > 0
