import torch

from text2live_geo.losses import StructureLoss, self_similarity


def test_self_similarity_is_cosine():
    tokens = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]])
    expected = torch.tensor([[1.0, 0.0, 2 ** -0.5], [0.0, 1.0, 2 ** -0.5], [2 ** -0.5, 2 ** -0.5, 1.0]])
    torch.testing.assert_close(self_similarity(tokens)[0], expected)


def test_structure_zero_for_same_tokens_positive_otherwise():
    tokens = torch.randn(2, 5, 8)
    loss = StructureLoss()
    assert loss(tokens, tokens * 3).item() < 1e-10  # per-token scale does not change structure
    moved = torch.randn(2, 5, 8, requires_grad=True)
    value = loss(tokens, moved)
    value.backward()
    assert value.item() > 0 and moved.grad.abs().sum() > 0
