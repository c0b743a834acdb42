"""The loss families' options: every choice a loss takes (a `Choice` enum, so a config names it
with a plain word) and the GFK's defaults. Without torch, so the configs can import it cheaply."""
from __future__ import annotations

from ..common.config import Choice

__all__ = ["DirectionalPairs", "Distance", "GFK_MAX_SUBSPACE_DIM", "GFK_NULL_DIM", "GFK_PUBLISHED_NULL_DIM",
           "GfkCentring", "GfkSolver", "ImcPairing", "TextReduction"]


class Distance(Choice):
    """Distance of a view embedding to a text embedding (`loss.distance`)."""

    spherical = "spherical"
    cosine = "cosine"


class TextReduction(Choice):
    """Composition / screen over several template embeddings (`loss.text_reduction`)."""

    mean_distance = "mean_distance"  # mean over templates of the distance to each (reference)
    mean_embedding = "mean_embedding"  # distance to the normalised mean template embedding


class DirectionalPairs(Choice):
    """Which views and text directions the directional loss pairs (`loss.directional_pairs`)."""

    index = "index"  # view i with text direction i mod T
    all = "all"  # every view with every text direction (reference)


class GfkSolver(Choice):
    """How the GFK is computed (`loss.gfk_solver`)."""

    hogsvd = "hogsvd"  # the published numerics, made deterministic
    exact = "exact"  # closed form


class GfkCentring(Choice):
    """How the GFK's PCA centres a batch before taking its subspace (`loss.gfk_centring`)."""

    # none: the subspace of the rows as they are (top singular directions); rotating the embedding
    # space rotates it, so the kernel is a property of the embeddings, not of their coordinates
    none = "none"
    # published: each row minus the mean of its own coordinates (the published code's); this removes
    # the component along (1, ..., 1), a direction the coordinates pick, so the result depends on them
    published = "published"


class ImcPairing(Choice):
    """IMC's text batch (`loss.imc_pairing`)."""

    published = "published"  # text directions as a batch paired row by row with the views (published fit)
    templates = "templates"  # text subspace fitted on the distinct template directions of the step


# the GFK's defaults, used by the functions below and by the config (`loss.gfk_*`).
# None: the whole orthogonal complement of the source subspace, as the geodesic flow kernel is
# defined; any other number keeps that many of its directions, in an order the coordinates decide
# (basis-dependent). The published code keeps 256 (GFK_PUBLISHED_NULL_DIM).
GFK_NULL_DIM: int | None = None
GFK_PUBLISHED_NULL_DIM = 256
GFK_MAX_SUBSPACE_DIM = 128
