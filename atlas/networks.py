"""Coordinate networks of a Neural Layered Atlas (NLA, Kasten et al. 2021).

The public NLA code defines one network type, the "IMLP": a stack of linear layers stored as
``hidden.{i}`` (so state dicts hold ``hidden.{i}.weight`` / ``hidden.{i}.bias``), a ReLU before
every layer but the first, a tanh after the last, an optional positional encoding of the input,
and optional skip layers whose input is the previous activation (after its ReLU) concatenated
with the encoded input. :class:`IMLP` reproduces that layout exactly, so public checkpoints load
with ``load_state_dict`` unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["encoding_frequencies", "positional_encoding", "IMLP"]


def encoding_frequencies(
    num_frequencies: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Frequencies ``b_k = 2^k * pi`` for ``k = 0 .. num_frequencies - 1``.

    Args:
        num_frequencies: F >= 0.
        device: where the tensor is created.
        dtype: floating dtype of the result.

    Returns:
        ``(F,)`` tensor.
    """
    values = [(2.0**k) * math.pi for k in range(num_frequencies)]
    return torch.tensor(values, device=device, dtype=dtype)


def positional_encoding(coordinates: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """NLA positional encoding: frequency-major, sin before cos, raw input excluded.

    For every frequency ``b_k`` the output holds the block
    ``[sin(b_k x_1) .. sin(b_k x_D), cos(b_k x_1) .. cos(b_k x_D)]``; blocks follow in order of
    increasing k. Output column ``k * 2D + d`` is ``sin(b_k x_d)`` and ``k * 2D + D + d`` is
    ``cos(b_k x_d)``.

    Args:
        coordinates: ``(P, D)`` input points (any range; NLA uses roughly [-1, 1]).
        frequencies: ``(F,)`` frequencies ``b_k`` (see :func:`encoding_frequencies`).

    Returns:
        ``(P, 2 * D * F)`` encoding, same device and dtype as ``coordinates``.
    """
    if coordinates.dim() != 2:
        raise ValueError(f"coordinates must be (P, D), got shape {tuple(coordinates.shape)}")
    frequencies = frequencies.to(device=coordinates.device, dtype=coordinates.dtype)
    projected = coordinates[:, None, :] * frequencies[None, :, None]  # (P, F, D)
    blocks = torch.cat((torch.sin(projected), torch.cos(projected)), dim=2)  # (P, F, 2D)
    return blocks.reshape(coordinates.shape[0], -1)


class IMLP(nn.Module):
    """NLA coordinate MLP with the public checkpoint layout.

    Layer ``i`` is ``hidden.{i}`` (an ``nn.Linear``). Its input width is the encoding width for
    ``i = 0``, ``hidden_dim + encoding width`` for a skip layer and ``hidden_dim`` otherwise; its
    output width is ``output_dim`` for the last layer and ``hidden_dim`` otherwise. The encoding
    width is ``2 * input_dim * num_frequencies`` with positional encoding and ``input_dim``
    without. Skip indices that are 0 or beyond the last layer are ignored.

    Args:
        input_dim: D, number of input coordinates.
        output_dim: number of outputs.
        hidden_dim: width of the hidden layers.
        num_layers: number of linear layers (>= 1).
        num_frequencies: positional-encoding frequencies F; 0 disables the encoding (the raw
            input is then fed, and concatenated at skip layers).
        skip_layers: layer indices whose input gets the encoded input concatenated (after the
            ReLU, hidden activation first). NLA's atlas network uses ``(4, 7)``.

    Forward: ``(P, input_dim)`` -> ``(P, output_dim)`` in (-1, 1) (tanh). The module follows its
    input's device; the frequencies are a non-persistent buffer (absent from the state dict, as in
    the public checkpoints).
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden_dim: int = 256,
        num_layers: int = 8,
        num_frequencies: int = 0,
        skip_layers: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if num_frequencies < 0:
            raise ValueError(f"num_frequencies must be >= 0, got {num_frequencies}")
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_frequencies = num_frequencies
        self.skip_layers = tuple(sorted(i for i in set(skip_layers) if 0 < i < num_layers))
        self.register_buffer("frequencies", encoding_frequencies(num_frequencies), persistent=False)
        encoded_dim = 2 * input_dim * num_frequencies if num_frequencies > 0 else input_dim
        self.encoded_dim = encoded_dim
        layers = []
        for i in range(num_layers):
            if i == 0:
                in_features = encoded_dim
            elif i in self.skip_layers:
                in_features = hidden_dim + encoded_dim
            else:
                in_features = hidden_dim
            out_features = output_dim if i == num_layers - 1 else hidden_dim
            layers.append(nn.Linear(in_features, out_features, bias=True))
        self.hidden = nn.ModuleList(layers)

    @property
    def uses_positional_encoding(self) -> bool:
        """Whether the input is positionally encoded."""
        return self.num_frequencies > 0

    def encode(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Network input for ``(P, input_dim)`` coordinates: ``(P, encoded_dim)``."""
        if self.uses_positional_encoding:
            return positional_encoding(coordinates, self.frequencies)
        return coordinates

    def forward(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Evaluate the network.

        Args:
            coordinates: ``(P, input_dim)`` points.

        Returns:
            ``(P, output_dim)`` values in (-1, 1).
        """
        if coordinates.dim() != 2 or coordinates.shape[1] != self.input_dim:
            raise ValueError(
                f"expected coordinates of shape (P, {self.input_dim}), got {tuple(coordinates.shape)}"
            )
        encoded = self.encode(coordinates)
        activation = encoded
        for i, layer in enumerate(self.hidden):
            if i > 0:
                activation = F.relu(activation)
            if i in self.skip_layers:
                activation = torch.cat((activation, encoded), dim=1)
            activation = layer(activation)
        return torch.tanh(activation)

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, output_dim={self.output_dim}, hidden_dim={self.hidden_dim}, "
            f"num_layers={self.num_layers}, num_frequencies={self.num_frequencies}, "
            f"skip_layers={self.skip_layers}"
        )
