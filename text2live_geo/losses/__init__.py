"""Loss families: one module each. Every loss is an nn.Module whose docstring gives shapes."""
from .clip_losses import DirectionalLoss, TextDistanceLoss, cosine_distance, spherical_distance
from .regularisers import BootstrapLoss, SparsityLoss, pseudo_l0
from .structure import StructureLoss, self_similarity

__all__ = ["DirectionalLoss", "TextDistanceLoss", "cosine_distance", "spherical_distance", "BootstrapLoss",
           "SparsityLoss", "pseudo_l0", "StructureLoss", "self_similarity"]
