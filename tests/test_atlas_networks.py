"""atlas.networks: positional encoding order and the public IMLP layout."""

import math

import pytest
import torch

from atlas import IMLP, AtlasConfig, NeuralAtlas, encoding_frequencies, positional_encoding

SQRT_HALF = math.sqrt(0.5)


def test_frequencies_are_powers_of_two_times_pi():
    assert torch.allclose(encoding_frequencies(4), torch.tensor([1.0, 2.0, 4.0, 8.0]) * math.pi)


def test_positional_encoding_is_frequency_major_sin_before_cos():
    # Input (x1, x2) = (0.25, -0.5), F = 3, b_k = 2^k pi; per k: sin x1, sin x2, cos x1, cos x2.
    encoded = positional_encoding(torch.tensor([[0.25, -0.5]]), encoding_frequencies(3))
    expected = torch.tensor([[
        SQRT_HALF, -1.0, SQRT_HALF, 0.0,  # k = 0: sin(pi/4), sin(-pi/2), cos(pi/4), cos(-pi/2)
        1.0, 0.0, 0.0, -1.0,              # k = 1: sin(pi/2), sin(-pi), cos(pi/2), cos(-pi)
        0.0, 0.0, -1.0, 1.0,              # k = 2: sin(pi), sin(-2pi), cos(pi), cos(-2pi)
    ]])
    assert encoded.shape == (1, 2 * 2 * 3)
    assert torch.allclose(encoded, expected, atol=1e-6)


def test_default_atlas_has_public_state_dict_layout():
    atlas = NeuralAtlas(AtlasConfig(width=768, height=432, num_frames=70))
    shapes = {
        "foreground_mapping": [(256, 3)] + [(256, 256)] * 4 + [(2, 256)],
        "background_mapping": [(256, 3)] + [(256, 256)] * 2 + [(2, 256)],
        "atlas_network": [(256, 40)] + [(256, 256)] * 3 + [(256, 296)] + [(256, 256)] * 2 + [(3, 296)],
        "alpha_network": [(256, 30)] + [(256, 256)] * 6 + [(1, 256)],
    }
    for name, weight_shapes in shapes.items():
        state = getattr(atlas, name).state_dict()
        expected_keys = [f"hidden.{i}.{p}" for i in range(len(weight_shapes)) for p in ("weight", "bias")]
        assert sorted(state) == sorted(expected_keys), name
        for i, shape in enumerate(weight_shapes):
            assert tuple(state[f"hidden.{i}.weight"].shape) == shape, (name, i)
            assert tuple(state[f"hidden.{i}.bias"].shape) == (shape[0],), (name, i)


def test_imlp_relu_skip_and_tanh_order():
    torch.manual_seed(0)
    network = IMLP(2, 3, hidden_dim=5, num_layers=4, num_frequencies=2, skip_layers=(2,))
    points = torch.rand(7, 2) * 2 - 1
    encoded = positional_encoding(points, encoding_frequencies(2))
    layers = network.hidden
    h = layers[0](encoded)  # no ReLU before the first layer
    h = layers[1](torch.relu(h))
    h = layers[2](torch.cat((torch.relu(h), encoded), dim=1))  # skip: after the ReLU, hidden first
    h = layers[3](torch.relu(h))
    assert torch.allclose(network(points), torch.tanh(h), atol=1e-6)


def test_imlp_without_encoding_feeds_raw_input_and_checks_shape():
    network = IMLP(3, 2, hidden_dim=4, num_layers=2)
    assert network.hidden[0].in_features == 3
    with pytest.raises(ValueError, match=r"\(P, 3\)"):
        network(torch.zeros(5, 2))
