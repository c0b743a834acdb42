"""Geodesic distillation loss (Oh et al., IJCV 2024, arXiv 2401.10526).

The loss compares two batches of (CLIP) features through the geodesic flow
kernel (GFK) that links the PCA subspace of the first batch to the PCA subspace
of the second batch on the Grassmann manifold, as in the geodesic knowledge
distillation of Simon et al. (CVPR 2021). See docs/geodesic.md.

Notation (docs/geodesic.md, "Notation"; ``X1`` of shape ``(n1, d)`` and ``X2`` of shape
``(n2, d)``, rows L2-normalised):

1. Subspaces. ``pca(X, k)``: ``D = X^T`` (``d x n``), centred or not
   (``centring``: ``"none"``, the default, keeps ``D``; ``"published"`` subtracts
   from each column its mean over the feature axis, ``D - D.mean(0)``, as the
   published code), SVD, first ``k`` left singular vectors;
   ``k = n`` if ``n <= 2`` else ``min(max_subspace_dim, n - 2)``, and never more
   than the numerical rank of ``D`` with the default centring.
   ``Ps = pca(X1, k1)``, ``Pt = pca(X2, k2)``, ``Rs`` = an orthonormal basis of the
   orthogonal complement of ``Ps`` (default: all of it, ``d - k1`` columns; with
   ``null_dim`` set, its first ``null_dim`` columns in Householder order, the
   published full-SVD null space as reference LAPACK computes it).
2. Principal angles. ``A = Ps^T Pt = U1 diag(cos theta) V^T``, ``B = Rs^T Pt``,
   ``B V = -U2 diag(sin theta)`` (exact with the full complement).
3. Kernel (GFK). ``G = [Ps U1, Rs U2] [[L1, L2], [L2, L3]] [Ps U1, Rs U2]^T``,
   which equals ``int_0^1 Phi(s) Phi(s)^T ds`` with
   ``Phi(s) = Ps U1 cos(s theta) - Rs U2 sin(s theta)`` when the complement is
   full (``Phi(0) = Ps U1``, ``Phi(1) = Pt V``).
4. Geodesic cosine: ``x1^T G x2 / sqrt(x1^T G x1 * x2^T G x2 + eps)``.
5. Losses: IMC (inter-modality consistency) and IMR (intra-modality
   regularisation), see the two modules at the bottom of this file.

Basis-free default: rotating the embedding space (``X -> X Q`` for an orthogonal
``Q``) changes no cosine and no principal angle, and with the defaults (whole
complement, no centring) it maps the kernel to ``Q^T G Q``, so every geodesic
cosine, IMC and IMR are unchanged and their gradients rotate with the inputs
(tests/test_losses_geodesic.py checks this at ``d = 512``). The published
settings (``null_dim=256``, ``centring="published"``) pick directions by the
coordinates (the Householder order of the complement; the all-ones vector the
centring removes), so their values change under a rotation.

Sign convention: ``U2`` is defined by ``B V = -U2 diag(sin theta)``, i.e.
``U2 = -normalise_columns(B V)``. This is the sign that makes the flow end at
the target subspace (``Phi(1) = Pt V``) and is also what the reference code
does (it negates the second HOGSVD factor, ``V2 = -V2``).

Dtype / device policy: everything follows the inputs' device. The kernel is
fitted in float64 (float32 on devices without float64 support, e.g. MPS);
``gfk_kernel`` returns the input dtype for float32/float64 inputs and float32
for float16/bfloat16 inputs; ``geodesic_cosine`` and the losses likewise compute
and return in the input dtype for float32/float64 and in float32 for
float16/bfloat16 inputs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .options import GFK_MAX_SUBSPACE_DIM, GFK_NULL_DIM, GfkCentring, GfkSolver, ImcPairing

__all__ = [
    "gfk_kernel",
    "geodesic_cosine",
    "InterModalityConsistency",
    "IntraModalityRegularisation",
]

_SOLVERS = tuple(GfkSolver)
_CENTRINGS = tuple(GfkCentring)
_PAIRINGS = tuple(ImcPairing)

# Fixed diagonal loading used by the hogsvd solver where the reference adds
# ``diag(randn) * 1e-4`` (inverse) and ``1e-4 * I`` (eigen-decomposition).
_HOGSVD_JITTER = 1e-4

# Column norms below this are treated as zero when normalising U1 / U2 columns.
_COL_EPS = 1e-12


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _out_dtype(dtype: torch.dtype) -> torch.dtype:
    """Public compute/return dtype: float32/float64 kept, anything else -> float32."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _fit_dtype(device: torch.device) -> torch.dtype:
    """Internal dtype of the kernel fit: float64 where the device supports it."""
    return torch.float32 if device.type == "mps" else torch.float64


def _safe_normalize(x: Tensor, eps: float) -> Tensor:
    """Row-wise L2 normalisation ``x / max(||x||, eps)`` of ``(n, d)``.

    A zero row stays the zero vector (value 0, finite gradient of magnitude
    ``~1/eps``).
    """
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)


def _check_features(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d), got {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {x.dtype}")


def _subspace_dim(n: int, d: int, max_subspace_dim: int) -> int:
    """``k = n`` if ``n <= 2`` else ``min(max_subspace_dim, n - 2)``; never above ``d``."""
    k = n if n <= 2 else min(max_subspace_dim, n - 2)
    return max(1, min(k, d))


def _pca(x: Tensor, k: int, centring: GfkCentring = GfkCentring.none) -> Tensor:
    """PCA basis ``(d, r)`` of the rows of ``x`` ``(n, d)``: the first ``r <= k`` left singular
    vectors of ``D = x^T``, centred as ``centring`` says.

    ``"none"``: ``D`` as it is; the basis spans the directions the rows occupy. ``"published"``:
    ``D - D.mean(0)`` subtracts from every column (sample) its mean over the feature axis.

    Rank-deficient data (repeated rows, e.g. 4 template directions cycled over 16 views, or
    all-zero rows): when ``D`` has numerical rank ``r < k`` the singular vectors beyond ``r``
    belong to zero singular values and an SVD returns directions fixed by rounding (they change
    with a 1e-7 change of the input, docs/geodesic.md "Rank-deficient batches"). With
    ``"none"`` the subspace is the ``r`` meaningful directions (``r`` columns, possibly 0): the
    only choice that does not depend on the coordinates. With ``"published"`` (whose
    subspaces always have ``k`` columns) they are completed deterministically with the first
    ``k - r`` columns of their Householder complement (:func:`_complement`).
    """
    data = x.transpose(0, 1)
    if centring == GfkCentring.published:
        data = data - data.mean(dim=0, keepdim=True)
    u, s, _ = torch.linalg.svd(data, full_matrices=False)
    tol = s.max() * max(data.shape) * torch.finfo(s.dtype).eps
    rank = int((s > tol).sum())
    if rank >= k:
        return u[:, :k]
    if centring == GfkCentring.none:
        return u[:, :rank]
    return torch.cat([u[:, :rank], _complement(u[:, :rank], k - rank)], dim=1)


def _complement(ps: Tensor, m: int) -> Tensor:
    """First ``m`` columns ``(d, m)`` of an orthonormal basis of span(ps)^perp.

    Taken from the complete Householder QR of ``ps`` (``d x k``): columns
    ``k .. k + m - 1`` of ``Q``. This is the published construction's null space
    (the right singular vectors of ``ps^T`` beyond its rank from a full SVD) as
    reference LAPACK computes it: for a wide ``k x d`` matrix ``dgesdd`` first takes
    the Householder LQ factorisation ``ps^T = L Q`` and returns the trailing rows of
    that ``Q``, i.e. these columns. (MKL returns another basis from ``k = 26``, i.e.
    28 rows, at ``d = 512``: one fixed by rounding, docs/geodesic.md "Solvers".)
    The Householder reflectors are unchanged when a column of ``ps`` changes sign,
    so the basis depends only on the PCA directions, not on the SVD's sign
    choices, and is reproducible across devices up to rounding.
    """
    k = ps.shape[1]
    q, _ = torch.linalg.qr(ps, mode="complete")
    return q[:, k : k + m]


def _normalize_columns(m: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(m / ||col||, ||col||)``; zero columns stay zero."""
    norms = torch.linalg.vector_norm(m, dim=0)
    return m / norms.clamp_min(_COL_EPS), norms


def _kernel_weights(theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """GFK diagonal blocks ``L1, L2, L3`` for principal angles ``theta`` in ``[0, pi/2]``.

    ``L1 = (1 + sin 2t / 2t) / 2``, ``L2 = (cos 2t - 1) / (2t) / 2``,
    ``L3 = (1 - sin 2t / 2t) / 2`` with limits ``1, 0, 0`` at ``t -> 0``.
    Written with ``sinc`` and ``L2 = -sin(t) * sinc(t) / 2`` so no division by
    ``t`` happens (safe for ``t = 0`` and tiny ``t``).
    """
    sinc2 = torch.sinc(2.0 * theta / math.pi)  # sin(2t)/(2t), 1 at t = 0
    l1 = 0.5 * (1.0 + sinc2)
    l2 = -0.5 * torch.sin(theta) * torch.sinc(theta / math.pi)  # (cos 2t - 1)/(4t)
    l3 = 0.5 * (1.0 - sinc2)
    return l1, l2, l3


def _assemble_kernel(w1: Tensor, w2: Tensor, theta: Tensor) -> Tensor:
    """GFK: ``G = [W1, W2] [[L1, L2], [L2, L3]] [W1, W2]^T`` with ``W1 = Ps U1``, ``W2 = Rs U2``.

    ``w1``, ``w2``: ``(d, r)``; ``theta``: ``(r,)``. Returns the symmetric PSD ``(d, d)`` kernel.
    Each per-angle block ``[[L1, L2], [L2, L3]]`` is PSD (Gram matrix of ``cos(s t)``,
    ``sin(s t)`` on ``[0, 1]``), so it is factored as ``C C^T`` with
    ``C = [[a, 0], [b, c]]`` and ``G = F F^T``, ``F = [W1 a + W2 b, W2 c]``: a single
    ``(d, 2r) x (2r, d)`` product that is symmetric and PSD by construction.
    """
    l1, l2, l3 = _kernel_weights(theta)
    a = torch.sqrt(l1)  # L1 >= 0.39 for t in [0, pi/2]
    b = l2 / a
    c = torch.sqrt((l3 - b * b).clamp_min(0.0))
    f = torch.cat([w1 * a + w2 * b, w2 * c], dim=1)
    return f @ f.transpose(0, 1)


def _principal_exact(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Closed-form principal angles. ``a = Ps^T Pt`` ``(k1, k2)``, ``b = Rs^T Pt`` ``(m, k2)``.

    ``A = U1 diag(cos theta) V^T`` (SVD, ``V`` completed to ``k2 x k2``; when
    ``k2 > k1`` the extra target directions have ``cos = 0`` and a zero ``U1``
    column) and ``U2 = -normalise_columns(B V)``. Returns ``U1 (k1, k2)``,
    ``U2 (m, k2)``, ``theta (k2,)``.
    """
    k1, k2 = a.shape
    u, s, vh = torch.linalg.svd(a, full_matrices=True)
    r = min(k1, k2)
    v = vh.transpose(0, 1)  # (k2, k2)
    u1 = a.new_zeros(k1, k2)
    u1[:, :r] = u[:, :r]
    cos = a.new_zeros(k2)
    cos[:r] = s[:r]
    theta = torch.acos(cos.clamp(0.0, 1.0))
    u2, _ = _normalize_columns(b @ v)
    return u1, -u2, theta


def _ns_inverse(c: Tensor) -> Tensor:
    """Reference approximate inverse of a ``(k, k)`` Gram matrix.

    One Newton-Schulz step for the inverse square root, squared:
    ``Z = (3 I - C / ||C||_F) / (2 sqrt(||C||_F))``, ``C^{-1} ~ Z Z``, after a
    fixed diagonal loading ``C + 1e-4 I`` (the reference loads with a random
    ``diag(randn) * 1e-4``).
    """
    k = c.shape[0]
    eye = torch.eye(k, dtype=c.dtype, device=c.device)
    c = c + _HOGSVD_JITTER * eye
    norm = torch.linalg.matrix_norm(c)  # Frobenius
    z = 0.5 * (3.0 * eye - c / norm) / torch.sqrt(norm)
    return z @ z


def _principal_hogsvd(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Reference principal angles by an approximate higher-order GSVD of ``[A, B]``.

    ``C_i = X_i^T X_i`` for ``X = [A, B]``;
    ``S = (C_0 C_1^{-1} + C_1 C_0^{-1}) / 2`` with the one-step Newton-Schulz
    inverse; ``V`` = left singular vectors of ``S + 1e-4 I``;
    ``cos = ||A V||_col``, ``U1 = A V / cos``, ``U2 = -(B V) / ||B V||_col``.
    Returns ``U1 (k1, k2)``, ``U2 (m, k2)``, ``theta (k2,)``.
    """
    k2 = a.shape[1]
    c0 = a.transpose(0, 1) @ a
    c1 = b.transpose(0, 1) @ b
    s = 0.5 * (c0 @ _ns_inverse(c1) + c1 @ _ns_inverse(c0))
    s = s + _HOGSVD_JITTER * torch.eye(k2, dtype=s.dtype, device=s.device)
    v, _, _ = torch.linalg.svd(s)
    u1, cos = _normalize_columns(a @ v)
    u2, _ = _normalize_columns(b @ v)
    theta = torch.acos(cos.clamp(0.0, 1.0))
    return u1, -u2, theta


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
@torch.no_grad()
def gfk_kernel(
    x1: Tensor,
    x2: Tensor,
    *,
    null_dim: int | None = GFK_NULL_DIM,
    max_subspace_dim: int = GFK_MAX_SUBSPACE_DIM,
    centring: GfkCentring = GfkCentring.none,
    solver: GfkSolver = GfkSolver.hogsvd,
    eps: float = 1e-8,
) -> Tensor:
    """Geodesic flow kernel (GFK) from the subspace of ``x1`` to the subspace of ``x2``.

    Args:
        x1: source features ``(n1, d)``, any scale (rows are L2-normalised here;
            rows with norm below ``eps`` are treated as zero vectors).
        x2: target features ``(n2, d)``; ``n2`` may differ from ``n1``.
        null_dim: ``None`` (default): the whole complement of the source subspace,
            as the GFK is defined (basis-free). A number keeps that many complement
            directions ``Rs`` in Householder order (clamped to ``d - k1``; the
            published code keeps 256), which depends on the coordinates.
        max_subspace_dim: cap on the PCA subspace dimension
            (``k = n`` if ``n <= 2`` else ``min(max_subspace_dim, n - 2)``).
        centring: ``"none"`` (default, basis-free) or ``"published"`` (each row minus
            the mean of its coordinates, as the published code); see :func:`_pca`.
        solver: ``"hogsvd"`` (default, reference numerics) or ``"exact"``.
        eps: normalisation floor for the rows.

    Returns:
        The detached, symmetric positive semi-definite kernel ``G`` of shape
        ``(d, d)`` on the inputs' device, in the inputs' dtype for float32 /
        float64 and in float32 for half precision inputs. With the full
        complement its eigenvalues lie in ``[0, 1]`` (an average of projectors
        along the flow).

    Solvers:
        ``"exact"``: closed form of docs/geodesic.md ("Subspaces" to "Kernel") -- SVD of
        ``A = Ps^T Pt`` gives ``U1``, ``cos theta`` and ``V``;
        ``U2 = -normalise_columns(Rs^T Pt V)``; with the full complement this is
        exactly ``int_0^1 Phi(s) Phi(s)^T ds``.

        ``"hogsvd"``: the reference implementation's numerics (Simon et al.,
        CVPR 2021 geodesic distillation as adapted by Oh et al.; with
        ``null_dim=256, centring="published"`` its settings too): ``U1, U2, V`` from the
        approximate higher-order GSVD of ``[A = Ps^T Pt, B = Rs^T Pt]``
        (``S = (C0 C1^-1 + C1 C0^-1)/2`` with the inverse approximated by one
        Newton-Schulz step for the inverse square root, ``V`` = left singular
        vectors of ``S + 1e-4 I``, ``cos theta`` = column norms of ``A V``,
        ``U2 = -(B V)/||B V||``). Differences to the reference: the random
        ``diag(randn) * 1e-4`` loading of the inverse is replaced by a fixed
        ``1e-4 I`` (deterministic); the fit runs in float64 on the inputs'
        device instead of a float32/float64 mix on CUDA; columns with zero norm
        are zeroed instead of producing NaN; the kernel blocks use the exact
        ``t -> 0`` limits (the reference's ``+1e-12`` guard gives
        ``L1 = L3 = 1/2`` at ``t = 0``); the target PCA dimension is computed
        from ``n2`` (the reference used ``n1`` for both; equal when ``n1 = n2``);
        PCA directions of rank-deficient batches beyond their rank are completed
        deterministically with the published centring and left out with the
        default (``_pca``). A truncated complement is the reference's full-SVD
        null space as reference LAPACK computes it (``_complement``); on equal-size
        batches, with the published settings, this matches the published formulas
        to ~1e-13 in the kernel and ~5e-8 in the cosine (its ``eps``) for 2-200 rows
        (tests/test_losses_geodesic.py, docs/geodesic.md "Solvers"). Compared with
        ``"exact"``: with the full complement the two agree up to rounding
        unless the HOGSVD eigenvalues nearly collide; with the truncated
        complement ``B^T B != I - A^T A`` so ``V`` is not the principal-angle
        basis and values differ noticeably (docs/geodesic.md, "Solvers": up to ~0.3 in the cosine).
    """
    _check_features(x1, "x1")
    _check_features(x2, "x2")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1 and x2 must have the same feature size d, got {x1.shape[1]} and {x2.shape[1]}")
    if x1.device != x2.device:
        raise ValueError(f"x1 and x2 must be on the same device, got {x1.device} and {x2.device}")
    if solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {[str(v) for v in _SOLVERS]}, got {solver!r}")
    if (null_dim is not None and null_dim < 0) or max_subspace_dim < 1:
        raise ValueError(f"need null_dim >= 0 (or None) and max_subspace_dim >= 1, got {null_dim}, {max_subspace_dim}")
    if centring not in _CENTRINGS:
        raise ValueError(f"centring must be one of {[str(v) for v in _CENTRINGS]}, got {centring!r}")

    out_dtype = _out_dtype(torch.promote_types(x1.dtype, x2.dtype))
    fit_dtype = _fit_dtype(x1.device)
    x1 = _safe_normalize(x1.detach().to(fit_dtype), eps)
    x2 = _safe_normalize(x2.detach().to(fit_dtype), eps)
    n1, d = x1.shape
    n2 = x2.shape[0]

    # Step 1: subspaces.
    k1 = _subspace_dim(n1, d, max_subspace_dim)
    k2 = _subspace_dim(n2, d, max_subspace_dim)
    ps = _pca(x1, k1, centring)
    pt = _pca(x2, k2, centring)
    k1 = ps.shape[1]  # below k1 where the rows span fewer directions (default centring)
    rs = _complement(ps, d - k1 if null_dim is None else min(null_dim, d - k1))

    # Step 2: principal angles.
    a = ps.transpose(0, 1) @ pt
    b = rs.transpose(0, 1) @ pt
    if solver == GfkSolver.exact:
        u1, u2, theta = _principal_exact(a, b)
    else:
        u1, u2, theta = _principal_hogsvd(a, b)

    # Step 3: GFK.
    g = _assemble_kernel(ps @ u1, rs @ u2, theta)
    return g.to(out_dtype)


def _cosine_with_kernel(x1: Tensor, x2: Tensor, g: Tensor, eps: float) -> Tensor:
    """Row-wise ``x1^T G x2 / sqrt(x1^T G x1 * x2^T G x2 + eps)`` for ``(n, d)`` rows and fixed ``G``."""
    num = (x1 * (x2 @ g)).sum(-1)
    q1 = (x1 * (x1 @ g)).sum(-1)
    q2 = (x2 * (x2 @ g)).sum(-1)
    # q1, q2 >= 0 for PSD G; clamp guards rounding so the sqrt stays real.
    return num / torch.sqrt((q1 * q2).clamp_min(0.0) + eps)


def _broadcast_rows(n1: int, n2: int) -> int:
    if n1 == n2 or n1 == 1 or n2 == 1:
        return max(n1, n2)
    raise ValueError(
        f"geodesic_cosine compares rows pairwise and needs x1 and x2 with the same number of rows "
        f"(or one of them with a single row to broadcast), got n1={n1} and n2={n2}; "
        f"use gfk_kernel for batches of different sizes"
    )


def geodesic_cosine(
    x1: Tensor,
    x2: Tensor,
    *,
    null_dim: int | None = GFK_NULL_DIM,
    max_subspace_dim: int = GFK_MAX_SUBSPACE_DIM,
    centring: GfkCentring = GfkCentring.none,
    solver: GfkSolver = GfkSolver.hogsvd,
    eps: float = 1e-8,
) -> Tensor:
    """Row-wise geodesic cosine similarity of two feature batches.

    Args:
        x1: ``(n, d)`` features (any scale; L2-normalised here with floor ``eps``,
            so a zero row gives similarity 0 with finite gradients).
        x2: ``(n, d)`` features, or one of ``x1``/``x2`` may have a single row,
            which is broadcast. Other mismatched row counts raise ``ValueError``.
        null_dim, max_subspace_dim, centring, solver: see :func:`gfk_kernel`.
        eps: row-normalisation floor and the constant under the square root.

    Returns:
        ``(n,)`` similarities ``x1^T G x2 / sqrt(x1^T G x1 * x2^T G x2 + eps)`` in
        about ``[-1, 1]`` (1 for identical rows), where ``G = gfk_kernel(x1, x2)``
        is fitted without gradient. Gradients flow to ``x1`` and ``x2`` only, never
        through the kernel. Dtype: the inputs' for float32/float64, float32 for
        half precision.
    """
    _check_features(x1, "x1")
    _check_features(x2, "x2")
    _broadcast_rows(x1.shape[0], x2.shape[0])
    g = gfk_kernel(x1, x2, null_dim=null_dim, max_subspace_dim=max_subspace_dim, centring=centring, solver=solver,
                   eps=eps)
    dtype = g.dtype
    x1n = _safe_normalize(x1.to(dtype), eps)
    x2n = _safe_normalize(x2.to(dtype), eps)
    return _cosine_with_kernel(x1n, x2n, g, eps)


# --------------------------------------------------------------------------- #
# losses
# --------------------------------------------------------------------------- #
class _GeodesicLoss(nn.Module):
    """Holds the GFK options shared by IMC and IMR."""

    def __init__(
        self,
        null_dim: int | None = GFK_NULL_DIM,
        max_subspace_dim: int = GFK_MAX_SUBSPACE_DIM,
        centring: GfkCentring = GfkCentring.none,
        solver: GfkSolver = GfkSolver.hogsvd,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {[str(v) for v in _SOLVERS]}, got {solver!r}")
        if centring not in _CENTRINGS:
            raise ValueError(f"centring must be one of {[str(v) for v in _CENTRINGS]}, got {centring!r}")
        self.null_dim = null_dim
        self.centring = GfkCentring(centring)
        self.max_subspace_dim = max_subspace_dim
        self.solver = GfkSolver(solver)
        self.eps = eps


class InterModalityConsistency(_GeodesicLoss):
    """IMC: geodesic replacement of the directional CLIP loss (docs/geodesic.md, "IMC").

    ``loss = 1 - mean_i sim(dI_i, dT_{i mod T})`` with
    ``dI = normalise(image_output - image_source)`` (row per view) and
    ``dT = normalise(text_target - text_source)`` (row per template). Views and
    templates are paired by index; when ``T != V`` the text rows are cycled
    (view ``i`` uses template ``i mod T``). The kernel is fitted without gradient;
    ``pairing`` chooses its target batch:

    - ``"templates"`` (default): the ``T`` distinct text directions (target
      subspace of ``k(T)`` dimensions, e.g. 2 for 4 templates);
    - ``"published"``: the text batch paired row by row with the ``V`` image
      directions, ``[dT_{i mod T}]_i`` (``V`` rows): the published
      ``fit(dir_x, dir_y)`` convention, both subspaces sized from ``V``. With
      ``T < V`` the text batch repeats rows and its PCA is completed
      deterministically (see ``_pca``).

    At step 0 the output equals the source, ``dI`` is the zero vector and the
    loss is exactly 1 with finite gradients (of magnitude ``~1/eps^1.5``,
    pointing along ``G dT``).
    """

    def __init__(
        self,
        null_dim: int | None = GFK_NULL_DIM,
        max_subspace_dim: int = GFK_MAX_SUBSPACE_DIM,
        centring: GfkCentring = GfkCentring.none,
        solver: GfkSolver = GfkSolver.hogsvd,
        eps: float = 1e-8,
        pairing: ImcPairing = ImcPairing.templates,
    ) -> None:
        super().__init__(null_dim=null_dim, max_subspace_dim=max_subspace_dim, centring=centring, solver=solver,
                         eps=eps)
        if pairing not in _PAIRINGS:
            raise ValueError(f"pairing must be one of {[str(v) for v in _PAIRINGS]}, got {pairing!r}")
        self.pairing = ImcPairing(pairing)

    def forward(self, image_source: Tensor, image_output: Tensor, text_source: Tensor, text_target: Tensor) -> Tensor:
        """Args: image_source, image_output ``(V, d)``; text_source, text_target ``(T, d)``
        (a single-row source broadcasts). Returns a scalar loss in about ``[0, 2]``."""
        for name, t in (("image_source", image_source), ("image_output", image_output),
                        ("text_source", text_source), ("text_target", text_target)):
            _check_features(t, name)
        dtype = _out_dtype(torch.promote_types(image_output.dtype, text_target.dtype))
        d_img = _safe_normalize((image_output.to(dtype) - image_source.to(dtype)), self.eps)
        d_txt = _safe_normalize((text_target.to(dtype) - text_source.to(dtype)), self.eps)
        n_views, n_text = d_img.shape[0], d_txt.shape[0]
        idx = torch.arange(n_views, device=d_txt.device) % n_text
        d_pair = d_txt[idx]  # text row paired with each view
        g = gfk_kernel(d_img, d_pair if self.pairing == ImcPairing.published else d_txt, null_dim=self.null_dim,
                       max_subspace_dim=self.max_subspace_dim, centring=self.centring, solver=self.solver,
                       eps=self.eps)
        sim = _cosine_with_kernel(d_img, d_pair, g, self.eps)
        return 1.0 - sim.mean()


class IntraModalityRegularisation(_GeodesicLoss):
    """IMR: ``1 - mean sim(anchor.detach(), output)`` (docs/geodesic.md, "IMR").

    The anchor (e.g. image features of the same views from the previous step's
    frozen generator, or of the input views) is detached, so gradients reach
    only ``output``.
    """


    def forward(self, anchor: Tensor, output: Tensor) -> Tensor:
        """Args: anchor, output ``(V, d)``. Returns a scalar loss in about ``[0, 2]``
        (0 when output equals anchor)."""
        sim = geodesic_cosine(anchor.detach(), output, null_dim=self.null_dim, max_subspace_dim=self.max_subspace_dim,
                              centring=self.centring, solver=self.solver, eps=self.eps)
        return 1.0 - sim.mean()
