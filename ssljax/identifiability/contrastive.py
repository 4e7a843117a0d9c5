"""Contrastive learning inverts the generating process; augmentations isolate content.

Two identifiability results for self-supervised learning on pairs of observations, each with
its generative process, its objectives and a study that prints our numbers beside the paper's.

**Zimmermann et al. 2021** ("Contrastive learning inverts the data generating process"). Latents
``z`` are uniform on the unit sphere ``S^{d-1}`` and the positive ``z~`` of each ``z`` is drawn
from a von Mises-Fisher distribution ``vMF(z, kappa)`` around it (sampled exactly with Wood's
1994 rejection algorithm); both are mixed into observations ``x = f(z)`` by one random
invertible MLP (``mixing.random_mixing``). An encoder ``h`` with L2-normalised output trained
with InfoNCE on the similarity ``h(x).h(x~) / tau`` recovers ``z`` up to an orthogonal map when
``tau = 1 / kappa`` (their Theorem 2), so the held-out linear R^2 of ``z`` from ``h(x)`` is the
measure, and the MCC after the best affine map is reported beside it. The box variant: ``z``
uniform on ``[low, high]^d`` and ``z~`` from a Laplace (or normal) conditional of scale
``scale`` *truncated* to the box (each coordinate drawn from the conditional restricted to
``[low, high]`` by inverse-CDF sampling, the exact law the reference code's rejection
resampling draws from); trained with InfoNCE on the negative L1 distance, the encoder recovers
``z`` up to permutations and signs (their Theorem 5), measured by the MCC without any map.

**von Kugelgen et al. 2021** ("Self-supervised learning with data augmentations provably
isolates content from style"). Latents split into content ``c`` (5 dims) and style ``s``
(5 dims); the second view keeps ``c`` exactly and changes each style dimension independently
with probability ``p_change``: ``s~_A ~ N(s_A, Sigma~_AA)`` on the changed subset ``A``.
Variants: ``independent`` (``(c, s) ~ N(0, I)``), ``statistical`` (``(c, s) ~ N(0, Sigma)``
with ``Sigma ~ Wishart(10, I) / 10`` over all ten latents, so content and style are correlated;
the change covariance ``Sigma~ ~ Wishart(5, I) / 5``; the reference code draws one Wishart
covariance per block, which leaves content and style independent, so ours is the stronger
dependence) and ``causal`` (``s = B c + a + n``, ``B``, ``a`` with i.i.d. ``N(0, 1)`` entries as
in the reference code, ``n ~ N(0, I)``). An encoder with ``n_c`` outputs trained with InfoNCE
(or AlignMaxEnt) identifies the content block up to an invertible map (their Theorems 4.2-4.4):
the nonlinear R^2 of ``c`` should be near 1, and the R^2 of ``s`` should not exceed what the
content alone predicts of the style (the *baseline*: 0 when independent, the population R^2 of
``E[s | c]`` otherwise; ``E[s | c]`` is linear for these Gaussian latents).

Both studies mix with ``study_mixing``: ``random_mixing`` with every layer's condition number
below the 0.1 % quantile of random draws, as the reference mixings select their layers (see
``condition_threshold``), and standardise the observations with the training statistics (an
affine map, which changes no identifiability result).

The objectives wire the library's pure losses to an MLP encoder: ``infonce_bound``
(``ssljax.objectives.mutual_information``) on a matrix of similarity scores, and
``align_maxent_loss`` (``ssljax.objectives.entropy``) on sigmoid outputs; inside the train
step negatives and entropy samples come from every device (``axis_name``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, ClassVar, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.identifiability import mixing as mixing_lib
from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    check_choice,
    check_int,
    check_range,
)
from ssljax.objectives.contrastive import gather_batch, l2_normalize
from ssljax.objectives.entropy import align_maxent_loss
from ssljax.objectives.mutual_information import infonce_bound

SPACES = ("sphere", "box")
BOX_CONDITIONALS = ("laplace", "normal")
VARIANTS = ("independent", "statistical", "causal")
OBJECTIVES = ("infonce", "alignmaxent")
SIMILARITIES = ("cosine", "neg_l1", "neg_sq_l2")

# What the papers report, printed beside our numbers: approximate values, read from the papers'
# tables (rounded; check the papers before quoting them).
ZIMMERMANN_REPORTED = {
    # Table 2: sphere, uniform marginal, vMF(kappa=1) conditional, model on the sphere,
    # d = 10, 3-layer mixing: linear R^2 of about 99.4 %.
    "sphere": {"r2_linear": 0.994},
    # Box, uniform marginal, Laplace(0.05) conditional, L1 model: MCC (no affine map) of
    # about 98.6 %.
    "box": {"mcc_raw": 0.986},
}
VON_KUGELGEN_REPORTED = {
    # Table 1, p_change = 1, no dependence, InfoNCE: content nonlinear R^2 about 1.00
    # (linear about 0.8), style R^2 about 0.0.
    "independent": {"content_r2_nonlinear": 1.0, "content_r2_linear": 0.8, "style_r2": 0.0},
}
# The papers' settings (``full=True``): d = 10 (5 content + 5 style), 3 mixing layers, encoder
# hidden widths [10d, 50d, 50d, 50d, 50d, 10d] with leaky ReLUs, Adam at 1e-4, batch 6144;
# 300k steps (Zimmermann et al.: 100k x 3 for the unsupervised model) and 100k steps (von
# Kugelgen et al.'s reference script).
PAPER_HIDDEN = (100, 500, 500, 500, 500, 100)
PAPER_BATCH = 6144
PAPER_LEARNING_RATE = 1e-4
PAPER_KAPPA = 1.0
PAPER_BOX_SCALE = 0.05

Array = Any


# ---------------------------------------------------------------------------------------
# Checks (one line each, naming the bad value and the valid choices)
# ---------------------------------------------------------------------------------------


def _choice(name: str, value, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is unknown; valid: {', '.join(choices)}")


def _positive(name: str, value) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} is invalid; valid: a finite number > 0")
    return value


def _probability(name: str, value) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} is invalid; valid: 0 <= {name} <= 1")
    return value


def _count(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < low:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= {low}")
    return int(value)


def _rng(seed_or_rng) -> np.random.Generator:
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    return np.random.default_rng(seed_or_rng)


# ---------------------------------------------------------------------------------------
# Latents on the sphere: uniform marginal, von Mises-Fisher conditional
# ---------------------------------------------------------------------------------------


def uniform_sphere(rng, n: int, dim: int) -> np.ndarray:
    """``n`` points uniform on the unit sphere ``S^{dim-1}`` (normalised Gaussians), float64."""
    rng = _rng(rng)
    _count("dim", dim, 2)
    x = rng.standard_normal((_count("n", n), dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def vmf_mean_resultant_length(dim: int, kappa: float) -> float:
    """``A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa)``: the mean cosine ``E[mu . x]`` of
    ``x ~ vMF(mu, kappa)`` on ``S^{d-1}`` (ratio of exponentially scaled Bessel functions)."""
    from scipy.special import ive

    kappa = _positive("kappa", kappa)
    dim = _count("dim", dim, 2)
    return float(ive(dim / 2.0, kappa) / ive(dim / 2.0 - 1.0, kappa))


def vmf_cosines(rng, n: int, dim: int, kappa: float) -> np.ndarray:
    """``n`` draws of ``w = mu . x`` for ``x ~ vMF(mu, kappa)`` on ``S^{dim-1}`` (Wood 1994).

    Wood's rejection sampler: with ``b = (d - 1) / (2 kappa + sqrt(4 kappa^2 + (d - 1)^2))``,
    ``x0 = (1 - b) / (1 + b)`` and ``c = kappa x0 + (d - 1) log(1 - x0^2)``, propose
    ``w = (1 - (1 + b) Z) / (1 - (1 - b) Z)`` with ``Z ~ Beta((d-1)/2, (d-1)/2)`` and accept when
    ``kappa w + (d - 1) log(1 - x0 w) - c >= log U``. (This ``b`` is Wood's
    ``(-2 kappa + sqrt(4 kappa^2 + (d-1)^2)) / (d - 1)`` without its cancellation.)
    """
    rng = _rng(rng)
    kappa = _positive("kappa", kappa)
    dim, n = _count("dim", dim, 2), _count("n", n)
    d1 = dim - 1.0
    b = d1 / (2.0 * kappa + math.sqrt(4.0 * kappa**2 + d1**2))
    x0 = (1.0 - b) / (1.0 + b)
    c = kappa * x0 + d1 * math.log(4.0 * b / (1.0 + b) ** 2)  # log(1 - x0^2), no cancellation
    out = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        z = rng.beta(d1 / 2.0, d1 / 2.0, size=todo.size)
        w = (1.0 - (1.0 + b) * z) / (1.0 - (1.0 - b) * z)
        u = rng.uniform(size=todo.size)
        accept = kappa * w + d1 * np.log1p(-x0 * w) - c >= np.log(u)
        out[todo[accept]] = w[accept]
        todo = todo[~accept]
    return out


def sample_vmf(rng, mean: Array, kappa: float) -> np.ndarray:
    """One draw of ``vMF(mean_i, kappa)`` per row of ``mean [n, d]`` (unit rows), float64.

    ``x = w mu + sqrt(1 - w^2) v`` with ``w`` from ``vmf_cosines`` and ``v`` uniform on the unit
    sphere of the tangent space at ``mu`` (a Gaussian with its ``mu`` component removed,
    normalised); exact for every ``kappa > 0`` and ``d >= 2``.
    """
    rng = _rng(rng)
    mean = np.asarray(mean, np.float64)
    if mean.ndim != 2 or mean.shape[1] < 2:
        raise ValueError(f"mean has shape {mean.shape}; valid: [n, d] with d >= 2")
    norms = np.linalg.norm(mean, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-5):
        raise ValueError(
            f"mean rows must have unit norm; norms span [{norms.min()}, {norms.max()}]"
        )
    mean = mean / norms[:, None]
    n, dim = mean.shape
    w = vmf_cosines(rng, n, dim, kappa)
    v = rng.standard_normal((n, dim))
    v -= np.sum(v * mean, axis=1, keepdims=True) * mean
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return w[:, None] * mean + np.sqrt(np.clip(1.0 - w**2, 0.0, None))[:, None] * v


def sphere_pairs(rng, n: int, dim: int, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """``(z, z~)``: ``z`` uniform on ``S^{dim-1}``, ``z~ ~ vMF(z, kappa)`` (float64 ``[n, dim]``)."""
    rng = _rng(rng)
    _positive("kappa", kappa)
    z = uniform_sphere(rng, n, dim)
    return z, sample_vmf(rng, z, kappa)


# ---------------------------------------------------------------------------------------
# Latents in a box: uniform marginal, truncated Laplace or normal conditional
# ---------------------------------------------------------------------------------------


def _laplace_cdf(x, loc, scale):
    t = (x - loc) / scale
    return np.where(t < 0, 0.5 * np.exp(np.minimum(t, 0.0)), 1.0 - 0.5 * np.exp(-np.maximum(t, 0)))


def _laplace_quantile(u, loc, scale):
    return np.where(
        u < 0.5,
        loc + scale * np.log(2.0 * np.maximum(u, 1e-300)),
        loc - scale * np.log(2.0 * np.maximum(1.0 - u, 1e-300)),
    )


def truncated_conditional(
    rng, loc: Array, scale: float, low: float, high: float, *, conditional: str = "laplace"
) -> np.ndarray:
    """Per coordinate, a draw of ``Laplace(loc, scale)`` or ``N(loc, scale^2)`` restricted to
    ``[low, high]`` (inverse CDF of the truncated law: ``u ~ U(F(low), F(high))``,
    ``x = F^{-1}(u)``). ``loc`` must lie in the box."""
    rng = _rng(rng)
    _choice("conditional", conditional, BOX_CONDITIONALS)
    scale = _positive("scale", scale)
    loc = np.asarray(loc, np.float64)
    if not low < high:
        raise ValueError(f"box low={low!r}, high={high!r} is invalid; valid: low < high")
    if np.any(loc < low) or np.any(loc > high):
        raise ValueError(f"loc must lie in the box [{low}, {high}]")
    if conditional == "normal":
        from scipy.stats import truncnorm

        a, b = (low - loc) / scale, (high - loc) / scale
        return truncnorm.rvs(a, b, loc=loc, scale=scale, size=loc.shape, random_state=rng)
    f_low, f_high = _laplace_cdf(low, loc, scale), _laplace_cdf(high, loc, scale)
    u = f_low + (f_high - f_low) * rng.uniform(size=loc.shape)
    return np.clip(_laplace_quantile(u, loc, scale), low, high)


def box_pairs(
    rng,
    n: int,
    dim: int,
    scale: float,
    *,
    conditional: str = "laplace",
    low: float = 0.0,
    high: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(z, z~)``: ``z`` uniform on ``[low, high]^dim``, ``z~`` from the truncated conditional
    of ``truncated_conditional`` around ``z`` (float64 ``[n, dim]``)."""
    rng = _rng(rng)
    _choice("conditional", conditional, BOX_CONDITIONALS)
    z = rng.uniform(low, high, size=(_count("n", n), _count("dim", dim)))
    return z, truncated_conditional(rng, z, scale, low, high, conditional=conditional)


# ---------------------------------------------------------------------------------------
# Content and style (von Kugelgen et al. 2021)
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ContentStyleProcess:
    """One draw of the content/style generative process (fixed parameters, any samples).

    ``(c, n) ~ N(0, covariance)``; ``s = n + c @ weight.T + offset``; the second view keeps
    ``c`` and changes each style dimension with probability ``p_change`` by
    ``N(0, change_covariance)`` (restricted to the changed ones).

    Attributes:
      variant: one of ``VARIANTS``.
      content_dim, style_dim: block sizes.
      p_change: probability that a style dimension changes between the views.
      covariance: ``[n_c + n_s, n_c + n_s]`` covariance of content and exogenous style.
      change_covariance: ``[n_s, n_s]`` covariance of the style change.
      weight: ``[n_s, n_c]`` causal effect ``B`` of content on style (zeros unless causal).
      offset: ``[n_s]`` intercept ``a`` of the style (zeros unless causal).
    """

    variant: str
    content_dim: int
    style_dim: int
    p_change: float
    covariance: np.ndarray
    change_covariance: np.ndarray
    weight: np.ndarray
    offset: np.ndarray

    @property
    def dim(self) -> int:
        return self.content_dim + self.style_dim

    def joint_covariance(self) -> np.ndarray:
        """Covariance of ``(c, s)``: ``M covariance M^T`` with ``M = [[I, 0], [B, I]]``."""
        m = np.eye(self.dim)
        m[self.content_dim :, : self.content_dim] = self.weight
        return m @ self.covariance @ m.T

    def style_r2_from_content(self) -> float:
        """Population R^2 of the style from the true content, averaged over style dimensions:
        ``diag(S_sc S_cc^{-1} S_cs) / diag(S_ss)`` of the joint covariance. The latents are
        jointly Gaussian, so ``E[s | c]`` is linear and this is also the best nonlinear R^2:
        the no-information baseline for the style R^2 of a content encoder."""
        cov = self.joint_covariance()
        k = self.content_dim
        s_cc, s_cs, s_ss = cov[:k, :k], cov[:k, k:], cov[k:, k:]
        explained = np.sum(s_cs * np.linalg.solve(s_cc, s_cs), axis=0)
        return float(np.mean(explained / np.diag(s_ss)))

    def sample(self, rng, n: int) -> dict[str, np.ndarray]:
        """``n`` pairs: ``content``, ``style``, ``style2`` (float64), ``changed`` (bool
        ``[n, n_s]``), and ``latent`` / ``latent2`` (``[c, s]`` and ``[c, s~]``)."""
        rng = _rng(rng)
        n = _count("n", n)
        k = self.content_dim
        exo = rng.standard_normal((n, self.dim)) @ np.linalg.cholesky(self.covariance).T
        content = exo[:, :k]
        style = exo[:, k:] + content @ self.weight.T + self.offset
        changed = rng.uniform(size=(n, self.style_dim)) < self.p_change
        noise = rng.standard_normal((n, self.style_dim))
        noise = noise @ np.linalg.cholesky(self.change_covariance).T
        style2 = style + np.where(changed, noise, 0.0)
        return {
            "content": content,
            "style": style,
            "style2": style2,
            "changed": changed,
            "latent": np.concatenate([content, style], axis=1),
            "latent2": np.concatenate([content, style2], axis=1),
        }


def _wishart(rng: np.random.Generator, dim: int) -> np.ndarray:
    """``Wishart(dim, I) / dim``: a random covariance with mean ``I`` (sum of ``dim`` outer
    products of standard Gaussians, divided by ``dim``)."""
    g = rng.standard_normal((dim, dim))
    return g.T @ g / dim


def content_style_process(
    variant: str = "independent",
    *,
    content_dim: int = 5,
    style_dim: int = 5,
    p_change: float = 1.0,
    seed: int = 0,
) -> ContentStyleProcess:
    """The generative process of ``variant`` (parameters drawn from ``seed``); see the module
    docstring. ``p_change = 1`` is the reference script's default (every style dimension
    changes)."""
    _choice("variant", variant, VARIANTS)
    p_change = _probability("p_change", p_change)
    k, m = _count("content_dim", content_dim), _count("style_dim", style_dim)
    rng = np.random.default_rng([seed, VARIANTS.index(variant)])
    covariance, change = np.eye(k + m), np.eye(m)
    weight, offset = np.zeros((m, k)), np.zeros(m)
    if variant == "statistical":
        covariance, change = _wishart(rng, k + m), _wishart(rng, m)
    elif variant == "causal":
        weight, offset = rng.standard_normal((m, k)), rng.standard_normal(m)
    return ContentStyleProcess(variant, k, m, p_change, covariance, change, weight, offset)


# ---------------------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------------------


def stack_views(x1: Array, x2: Array) -> np.ndarray:
    """The two views ``[n, D]`` as one float32 array ``[n, 2, D]`` (``data['image']`` of
    ``fit``, split again by the objectives' ``make_views``)."""
    x1, x2 = np.asarray(x1, np.float32), np.asarray(x2, np.float32)
    if x1.shape != x2.shape or x1.ndim != 2:
        raise ValueError(
            f"views have shapes {x1.shape} and {x2.shape}; valid: two equal shapes [n, D]"
        )
    return np.stack([x1, x2], axis=1)


def mix_pairs(mixing: mixing_lib.Mixing, z: Array, z_tilde: Array) -> dict[str, np.ndarray]:
    """``{'image': f(z), 'image2': f(z~), 'latent': z, 'latent2': z~}`` (float32)."""
    z, z_tilde = np.asarray(z, np.float32), np.asarray(z_tilde, np.float32)
    if z.shape != z_tilde.shape:
        raise ValueError(f"latent views have shapes {z.shape} and {z_tilde.shape}; valid: equal")
    return {
        "image": np.asarray(mixing_lib.apply_mixing(mixing, z)),
        "image2": np.asarray(mixing_lib.apply_mixing(mixing, z_tilde)),
        "latent": z,
        "latent2": z_tilde,
    }


def zimmermann_latents(
    rng,
    n: int,
    *,
    space: str = "sphere",
    dim: int = 10,
    kappa: float = PAPER_KAPPA,
    scale: float = PAPER_BOX_SCALE,
    conditional: str = "laplace",
) -> tuple[np.ndarray, np.ndarray]:
    """Latent pairs of Zimmermann et al. 2021: ``sphere_pairs`` (vMF) or ``box_pairs``."""
    _choice("space", space, SPACES)
    if space == "sphere":
        return sphere_pairs(rng, n, dim, kappa)
    return box_pairs(rng, n, dim, scale, conditional=conditional)


def zimmermann_pairs(rng, n: int, mixing: mixing_lib.Mixing, **latents) -> dict[str, np.ndarray]:
    """``n`` observation pairs of Zimmermann et al.'s process: ``mix_pairs`` of
    ``zimmermann_latents(rng, n, dim=mixing.dim, **latents)``."""
    z, z_tilde = zimmermann_latents(rng, n, dim=mixing.dim, **latents)
    return mix_pairs(mixing, z, z_tilde)


def content_style_pairs(
    process: ContentStyleProcess, mixing: mixing_lib.Mixing, rng, n: int
) -> dict[str, np.ndarray]:
    """``n`` observation pairs of ``process`` mixed by ``mixing``: ``image``, ``image2``,
    ``latent``, ``latent2`` (``mix_pairs``) and the true blocks ``content``, ``style``,
    ``style2``, ``changed`` (``ContentStyleProcess.sample``)."""
    if mixing.dim != process.dim:
        raise ValueError(f"mixing has dim {mixing.dim}; the process has {process.dim} latents")
    latents = process.sample(rng, n)
    return {**latents, **mix_pairs(mixing, latents["latent"], latents["latent2"])}


# ---------------------------------------------------------------------------------------
# Encoder and objectives
# ---------------------------------------------------------------------------------------


class MLPEncoder(nn.Module):
    """Dense layers of widths ``hidden`` with leaky ReLUs, then ``Dense(output_dim)``;
    ``normalize``: outputs divided by their L2 norm (points on the unit sphere)."""

    hidden: tuple[int, ...] = (128, 128, 128)
    output_dim: int = 10
    negative_slope: float = 0.01
    normalize: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train
        h = x.astype(jnp.float32)
        for width in self.hidden:
            h = nn.leaky_relu(nn.Dense(int(width))(h), self.negative_slope)
        h = nn.Dense(int(self.output_dim))(h)
        return l2_normalize(h) if self.normalize else h


def similarity_scores(
    anchors: Array, candidates: Array, *, similarity: str, temperature: float
) -> jax.Array:
    """``scores[i, j] = sim(anchors_i, candidates_j) / temperature`` (``[k, K]``).

    ``cosine``: ``a.b`` of L2-normalised vectors (Zimmermann et al.'s sphere model);
    ``neg_l1``: ``-||a - b||_1`` (their box model, Laplace conditional); ``neg_sq_l2``:
    ``-||a - b||_2^2`` (their unbounded model and von Kugelgen et al.'s InfoNCE).
    """
    _choice("similarity", similarity, SIMILARITIES)
    a = jnp.asarray(anchors, jnp.float32)
    b = jnp.asarray(candidates, jnp.float32)
    if similarity == "cosine":
        sim = l2_normalize(a) @ l2_normalize(b).T
    elif similarity == "neg_l1":
        sim = -jnp.sum(jnp.abs(a[:, None, :] - b[None, :, :]), axis=-1)
    else:
        sim = -jnp.sum(jnp.square(a[:, None, :] - b[None, :, :]), axis=-1)
    return sim / temperature


@dataclasses.dataclass(frozen=True)
class PairObjective(Objective):
    """An MLP encoder on observation pairs ``data['image'] [n, 2, D]`` (``stack_views``).

    Attributes:
      hidden: widths of the encoder's hidden layers.
      output_dim: dimension of the representation.
      negative_slope: slope of the leaky ReLUs.
    """

    hidden: tuple = (128, 128, 128)
    output_dim: int = 10
    negative_slope: float = 0.01

    def __post_init__(self):
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))
        if not isinstance(self.hidden, tuple):
            raise ValueError(f"objective.hidden={self.hidden!r} is invalid; valid: a tuple of ints")
        for width in self.hidden:
            check_int("hidden", width)
        check_int("output_dim", self.output_dim)
        check_range("negative_slope", self.negative_slope, low=0.0, high=1.0)

    def check(self, run) -> None:
        shape = tuple(run.facts.image_shape)
        if len(shape) != 2 or shape[0] != 2:
            raise ValueError(
                f"observations have per-example shape {shape}; valid: (2, D), the two views "
                "stacked by stack_views"
            )

    def encoder(self) -> MLPEncoder:
        return MLPEncoder(
            hidden=tuple(int(w) for w in self.hidden),
            output_dim=int(self.output_dim),
            negative_slope=float(self.negative_slope),
            normalize=self.normalize_output(),
        )

    def normalize_output(self) -> bool:
        """Whether the encoder L2-normalises its output."""
        return False

    def init_params(self, seed: int, input_dim: int):
        """The encoder's parameters before training (``fit`` draws its own from ``seed``)."""
        return self.encoder().init(jax.random.PRNGKey(seed), jnp.zeros((1, input_dim)))["params"]

    def build_model(self, run, axis_name):
        del run, axis_name
        return self.encoder()

    def make_views(self, rng, images, run):
        del rng, run
        if images.ndim != 3 or images.shape[1] != 2:
            raise ValueError(f"observations have shape {images.shape}; valid: [n, 2, D]")
        return images[:, 0], images[:, 1]

    def representation(self, outputs: Array) -> Array:
        """The representation the loss compares (the encoder's output by default)."""
        return outputs

    def pair_loss(self, h1, h2, axis_name) -> tuple[jax.Array, dict]:
        raise NotImplementedError

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        x1, x2 = views
        n = x1.shape[0]
        out = ctx.model.apply({"params": params}, jnp.concatenate([x1, x2], axis=0), train=True)
        h1, h2 = self.representation(out[:n]), self.representation(out[n:])
        loss, metrics = self.pair_loss(h1, h2, ctx.axis_name)
        return loss, LossAux(dict(metrics, loss=loss), model_state, Outputs(embedding=h1))

    def encode(self, params, x: Array, *, batch_size: int = 8192) -> np.ndarray:
        """The representation of observations ``x [n, D]`` (float32 NumPy), in batches."""
        model = self.encoder()
        apply = jax.jit(lambda p, v: self.representation(model.apply({"params": p}, v)))
        x = np.asarray(x, np.float32)
        rows = [
            np.asarray(apply(params, x[i : i + batch_size])) for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(rows, axis=0)


@dataclasses.dataclass(frozen=True)
class PairInfoNCE(PairObjective):
    """InfoNCE between the two views (Zimmermann et al. 2021; von Kugelgen et al. 2021).

    Row ``i`` of the score matrix holds ``sim(h(x_i), h(x~_j)) / temperature`` for every
    ``x~_j`` of the global batch; the loss is ``log K - infonce_bound(scores)``: the mean
    cross entropy of picking each positive among the ``K`` candidates. ``symmetric``
    averages it with the loss of the transposed roles (anchors ``x~``, candidates ``x``).

    Attributes:
      temperature: ``tau``; ``1 / kappa`` matches a vMF conditional (Zimmermann et al.).
      similarity: one of ``SIMILARITIES``; ``cosine`` L2-normalises the encoder output.
      symmetric: average the two directions.
    """

    name: ClassVar[str] = "identifiability_infonce"
    description: ClassVar[str] = "InfoNCE on observation pairs (Zimmermann et al. 2021)"

    temperature: float = 1.0
    similarity: str = "cosine"
    symmetric: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_range("temperature", self.temperature, low=0.0, low_open=True)
        check_choice("similarity", self.similarity, SIMILARITIES)

    def normalize_output(self) -> bool:
        return self.similarity == "cosine"

    def pair_loss(self, h1, h2, axis_name):
        kwargs = dict(similarity=self.similarity, temperature=float(self.temperature))
        h2_all, _ = gather_batch(h2, axis_name)
        bound = infonce_bound(similarity_scores(h1, h2_all, **kwargs), axis_name=axis_name)
        if self.symmetric:
            h1_all, _ = gather_batch(h1, axis_name)
            reverse = infonce_bound(similarity_scores(h2, h1_all, **kwargs), axis_name=axis_name)
            bound = 0.5 * (bound + reverse)
        loss = math.log(h2_all.shape[0]) - bound
        return loss, {"infonce_bound": bound}


@dataclasses.dataclass(frozen=True)
class PairAlignMaxEnt(PairObjective):
    """AlignMaxEnt (von Kugelgen et al. 2021, eq. 7) on ``g = sigmoid(encoder(x))``:
    ``E ||g(x) - g(x~)||^2 - entropy_weight * H(g(x))`` (``align_maxent_loss``).

    Attributes:
      entropy_weight: weight of the Kozachenko-Leonenko entropy term.
    """

    name: ClassVar[str] = "identifiability_align_maxent"
    description: ClassVar[str] = "AlignMaxEnt on observation pairs (von Kugelgen et al. 2021)"

    entropy_weight: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_range("entropy_weight", self.entropy_weight, low=0.0)

    def representation(self, outputs):
        return jax.nn.sigmoid(outputs)

    def pair_loss(self, h1, h2, axis_name):
        return align_maxent_loss(
            h1, h2, entropy_weight=float(self.entropy_weight), axis_name=axis_name
        )


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


def affine_mcc(h: Array, z: Array, *, test_fraction: float = 0.2, seed: int = 0) -> float:
    """MCC (Pearson) between ``z`` and its best affine prediction from ``h``, held out.

    Least squares ``z ~ h W + b`` on a random ``1 - test_fraction`` of the samples, then the
    Hungarian-matched mean absolute correlation of prediction and truth on the rest. This is
    the MCC after the indeterminacy that the sphere result leaves (an orthogonal map).
    """
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split

    from ssljax.identifiability.metrics import mean_correlation_coefficient

    h, z = np.asarray(h, np.float64), np.asarray(z, np.float64)
    if h.ndim != 2 or z.ndim != 2 or h.shape[0] != z.shape[0]:
        raise ValueError(f"h {h.shape} and z {z.shape} must be [n, dim] of the same n")
    h_tr, h_te, z_tr, z_te = train_test_split(h, z, test_size=test_fraction, random_state=seed)
    pred = LinearRegression().fit(h_tr, z_tr).predict(h_te)
    return mean_correlation_coefficient(pred, z_te)


def zimmermann_scores(h: Array, z: Array, *, seed: int = 0) -> dict[str, float]:
    """``r2_linear`` (held-out ridge R^2 of ``z`` from ``h``), ``mcc_affine`` (MCC after the
    best affine map, held out) and ``mcc_raw`` (MCC of ``h`` itself, no map)."""
    from ssljax.identifiability.metrics import block_r2, mean_correlation_coefficient

    return {
        "r2_linear": block_r2(h, z, kind="linear", seed=seed),
        "mcc_affine": affine_mcc(h, z, seed=seed),
        "mcc_raw": mean_correlation_coefficient(h, z),
    }


# ---------------------------------------------------------------------------------------
# Studies
# ---------------------------------------------------------------------------------------


def condition_threshold(dim: int, quantile: float, *, pool: int = 25000, seed: int = 0) -> float:
    """The ``quantile`` of the condition numbers of ``pool`` random ``N(0, 1/dim)`` matrices.

    The reference mixings (Hyvarinen & Morioka 2016's code, reused by Zimmermann et al. 2021
    and von Kugelgen et al. 2021) keep a layer only when its condition number is below such
    a quantile of a pool of 25000 draws (ratio 0 in Zimmermann et al.'s script, 0.001 in von
    Kugelgen et al.'s); ``random_mixing``'s default bound ``4 * dim`` admits layers near the
    median (about 30 for ``dim = 10``), whose composed inverse is far harder to learn.
    """
    _count("dim", dim)
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile={quantile!r} is invalid; valid: 0 < quantile <= 1")
    rng = np.random.default_rng([seed, dim])
    draws = rng.standard_normal((_count("pool", pool), dim, dim)) / math.sqrt(dim)
    return float(np.quantile(np.linalg.cond(draws), quantile))


# Layers are kept below the 0.1 % quantile of the condition number (von Kugelgen et al.'s
# ratio; Zimmermann et al. take the best of their pool, which would need ~25000 draws a layer).
MIXING_CONDITION_QUANTILE = 0.001


def study_mixing(
    seed: int, dim: int, depth: int, quantile: float = MIXING_CONDITION_QUANTILE
) -> mixing_lib.Mixing:
    """The random invertible MLP of a study: ``random_mixing`` with layers whose condition
    number is below ``condition_threshold(dim, quantile)``."""
    threshold = condition_threshold(dim, quantile, seed=seed)
    return mixing_lib.random_mixing(
        jax.random.PRNGKey(seed),
        dim,
        _count("depth", depth),
        max_condition=threshold,
        max_tries=int(50 / quantile),
    )


def standardize(train: Array, *others: Array) -> list[np.ndarray]:
    """Every array minus the mean and divided by the standard deviation of ``train`` (per
    column): an invertible affine map of the observations, which changes no identifiability
    result and gives the encoder inputs of unit scale."""
    train = np.asarray(train, np.float32)
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(np.asarray(a, np.float32) - mean) / std for a in (train, *others)]


def _loss_summary(losses: np.ndarray) -> dict[str, float]:
    """Mean loss of the first and of the last twentieth of the steps (at least 5 steps)."""
    k = max(5, len(losses) // 20)
    return {"initial_loss": float(np.mean(losses[:k])), "final_loss": float(np.mean(losses[-k:]))}


def _log_every(steps: int) -> int:
    return max(1, steps // 5)


def _train(objective: PairObjective, x1, x2, *, steps, batch_size, learning_rate, seed):
    from ssljax.identifiability.fit import fit

    return fit(
        objective,
        {"image": stack_views(x1, x2)},
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        log_every=_log_every(steps),
    )


def zimmermann_study(
    *,
    space: str = "sphere",
    dim: int = 10,
    kappa: float = 20.0,
    scale: float = PAPER_BOX_SCALE,
    depth: int = 3,
    steps: int = 4000,
    batch_size: int = 512,
    seed: int = 0,
    hidden: tuple = (128, 128, 128),
    learning_rate: float = 5e-3,
    temperature: float | None = None,
    num_train: int = 100_000,
    num_eval: int = 5000,
    mixing_quantile: float = MIXING_CONDITION_QUANTILE,
    full: bool = False,
) -> dict:
    """Contrastive learning inverts an invertible-MLP mixing (Zimmermann et al. 2021).

    Draws ``num_train`` latent pairs (``sphere``: uniform + ``vMF(kappa)``; ``box``: uniform
    on ``[0, 1]^dim`` + truncated ``Laplace(scale)``), mixes them with a random invertible MLP
    of ``depth`` layers (``study_mixing``), standardises the observations, trains
    ``PairInfoNCE`` (sphere: cosine similarity at ``tau = 1 / kappa``; box: negative L1
    distance at ``tau = 1``) with ``fit``, and scores the encoder on ``num_eval`` fresh samples
    of the same process.

    Which number is the paper's: on the sphere the latents are identified up to an
    orthogonal map, so ``r2_linear`` is the measure (and ``mcc_affine``, the MCC after the
    best affine map, the target here); in the box with the L1 model up to permutation and
    sign, so ``mcc_raw``. ``baseline_r2_linear_observations`` is the linear R^2 of the latents
    from the observations themselves, ``untrained`` the scores of the encoder before training.

    ``mixing_quantile`` sets the mixing's conditioning (``study_mixing``; tests use a loose
    0.5 to draw it fast). ``full=True`` uses the paper's settings (``dim = 10``, ``depth = 3``,
    ``kappa = 1``, batch 6144, 300k steps, encoder widths ``PAPER_HIDDEN``, Adam at 1e-4,
    ``num_train = 10^6``; the paper draws fresh pairs every step, here a fixed set is reused).
    The default is CPU-sized: ``kappa = 20`` (positives closer to their anchors; a short run
    learns these faster), a narrower encoder, 4000 steps of 512 at a larger learning rate.
    """
    _choice("space", space, SPACES)
    if full:
        kappa, steps, batch_size = PAPER_KAPPA, 300_000, PAPER_BATCH
        hidden, learning_rate, num_train = PAPER_HIDDEN, PAPER_LEARNING_RATE, 1_000_000
        dim, depth, scale = 10, 3, PAPER_BOX_SCALE
    kappa = _positive("kappa", kappa)
    scale = _positive("scale", scale)
    if temperature is None:
        temperature = 1.0 / kappa if space == "sphere" else 1.0
    similarity = "cosine" if space == "sphere" else "neg_l1"
    objective = PairInfoNCE(
        hidden=tuple(hidden), output_dim=dim, temperature=temperature, similarity=similarity
    )
    setting = (
        f"sphere S^{dim - 1}, vMF kappa={kappa:g}, tau={temperature:g}"
        if space == "sphere"
        else f"box [0,1]^{dim}, truncated Laplace scale={scale:g}, L1 model, tau={temperature:g}"
    )
    print(
        f"[zimmermann] {setting}; mixing depth {depth}; {steps} steps of {batch_size}", flush=True
    )
    start = time.perf_counter()
    rng = np.random.default_rng([seed, 2021])
    mixing = study_mixing(seed, dim, depth, mixing_quantile)
    latents = dict(space=space, kappa=kappa, scale=scale)
    train = zimmermann_pairs(rng, num_train, mixing, **latents)
    test = zimmermann_pairs(rng, num_eval, mixing, **latents)
    x1, x2, x_test = standardize(train["image"], train["image2"], test["image"])
    untrained = zimmermann_scores(
        objective.encode(objective.init_params(seed, dim), x_test), test["latent"], seed=seed
    )
    result = _train(
        objective,
        x1,
        x2,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
    )
    scores = zimmermann_scores(objective.encode(result.params, x_test), test["latent"], seed=seed)
    from ssljax.identifiability.metrics import block_r2

    row = {
        "study": "zimmermann",
        "space": space,
        "dim": dim,
        "kappa": kappa if space == "sphere" else None,
        "scale": scale if space == "box" else None,
        "temperature": float(temperature),
        "depth": depth,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "full": full,
        **scores,
        "paper_measure": "r2_linear" if space == "sphere" else "mcc_raw",
        "paper": dict(ZIMMERMANN_REPORTED[space]),
        "untrained": untrained,
        "baseline_r2_linear_observations": block_r2(x_test, test["latent"], seed=seed),
        **_loss_summary(result.losses),
        "train_seconds": float(result.seconds),
        "seconds": time.perf_counter() - start,
    }
    print(
        f"[zimmermann] R^2 linear {row['r2_linear']:.4f}, MCC affine {row['mcc_affine']:.4f}, "
        f"MCC raw {row['mcc_raw']:.4f} (untrained: R^2 {untrained['r2_linear']:.4f}; "
        f"observations: R^2 {row['baseline_r2_linear_observations']:.4f}); paper (approx.) "
        + ", ".join(f"{k} {v:.3f}" for k, v in row["paper"].items())
        + f"; {row['seconds']:.0f} s",
        flush=True,
    )
    return row


def make_pair_objective(
    objective: str = "infonce", *, output_dim: int = 5, hidden: tuple = (128, 128, 128), **kwargs
) -> PairObjective:
    """``PairInfoNCE`` (negative squared L2 similarity at ``tau = 1``, as von Kugelgen et
    al.'s reference code) or ``PairAlignMaxEnt`` by name (``OBJECTIVES``)."""
    _choice("objective", objective, OBJECTIVES)
    if objective == "infonce":
        kwargs.setdefault("similarity", "neg_sq_l2")
        kwargs.setdefault("temperature", 1.0)
        return PairInfoNCE(hidden=tuple(hidden), output_dim=output_dim, **kwargs)
    return PairAlignMaxEnt(hidden=tuple(hidden), output_dim=output_dim, **kwargs)


def content_style_study(
    *,
    variant: str = "independent",
    objective: str = "infonce",
    p_change: float = 1.0,
    steps: int = 2000,
    batch_size: int = 512,
    seed: int = 0,
    depth: int = 3,
    hidden: tuple = (128, 128, 128),
    learning_rate: float = 3e-3,
    entropy_weight: float = 0.02,
    num_train: int = 100_000,
    num_eval: int = 5000,
    mixing_quantile: float = MIXING_CONDITION_QUANTILE,
    full: bool = False,
) -> dict:
    """Augmentations isolate content from style (von Kugelgen et al. 2021).

    Draws the ``variant`` process (5 content + 5 style latents), mixes the pairs with a
    random invertible MLP of ``depth`` layers (``study_mixing``), standardises the
    observations, trains ``objective`` (``infonce``: negative squared L2 at ``tau = 1``;
    ``alignmaxent`` with ``entropy_weight``; 5 outputs) and reports on ``num_eval`` fresh
    samples the held-out R^2 of the content and of the style blocks from the representation,
    linear (ridge) and nonlinear (RBF kernel ridge), from
    ``ssljax.identifiability.metrics.block_r2``.

    The style baseline: ``style_baseline_r2_nonlinear`` is the held-out nonlinear R^2 of the
    style from the TRUE content, ``style_baseline_r2_population`` its population value
    (``ContentStyleProcess.style_r2_from_content``): 0 when independent, > 0 under
    statistical or causal dependence. A representation of the content alone predicts the
    style up to this baseline and no further.

    ``entropy_weight`` (AlignMaxEnt only) defaults to 0.02: the alignment of sigmoid outputs
    is small next to the entropy estimate, and at weight 1 a CPU-sized run trades content for
    entropy (content R^2 near 0.5). ``mixing_quantile`` as in ``zimmermann_study``.
    ``full=True``: batch 6144, 100k steps, ``PAPER_HIDDEN``,
    Adam at 1e-4, ``num_train = 10^6`` (the paper draws fresh pairs every step).
    """
    from ssljax.identifiability.metrics import block_r2

    _choice("variant", variant, VARIANTS)
    _choice("objective", objective, OBJECTIVES)
    _probability("p_change", p_change)
    if full:
        steps, batch_size, hidden = 100_000, PAPER_BATCH, PAPER_HIDDEN
        learning_rate, num_train, depth = PAPER_LEARNING_RATE, 1_000_000, 3
    process = content_style_process(variant, p_change=p_change, seed=seed)
    extra = {"entropy_weight": entropy_weight} if objective == "alignmaxent" else {}
    model = make_pair_objective(objective, output_dim=process.content_dim, hidden=hidden, **extra)
    print(
        f"[content/style] {variant}, p_change={p_change:g}, {objective}; {steps} steps of "
        f"{batch_size}",
        flush=True,
    )
    start = time.perf_counter()
    mixing = study_mixing(seed, process.dim, depth, mixing_quantile)
    rng = np.random.default_rng([seed, 2106])
    train = content_style_pairs(process, mixing, rng, num_train)
    test = content_style_pairs(process, mixing, rng, num_eval)
    x1, x2, x_test = standardize(train["image"], train["image2"], test["image"])
    result = _train(
        model, x1, x2, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed
    )
    h = model.encode(result.params, x_test)
    row = {
        "study": "content_style",
        "variant": variant,
        "objective": objective,
        "p_change": p_change,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "full": full,
    }
    for block in ("content", "style"):
        for kind in ("linear", "nonlinear"):
            row[f"{block}_r2_{kind}"] = block_r2(h, test[block], kind=kind, seed=seed)
    row["style_baseline_r2_nonlinear"] = block_r2(
        test["content"], test["style"], kind="nonlinear", seed=seed
    )
    row["style_baseline_r2_population"] = process.style_r2_from_content()
    row["paper"] = dict(VON_KUGELGEN_REPORTED.get(variant, {})) if p_change == 1.0 else {}
    row.update(_loss_summary(result.losses))
    row["train_seconds"] = float(result.seconds)
    row["seconds"] = time.perf_counter() - start
    paper = row["paper"]
    print(
        f"[content/style] content R^2 lin {row['content_r2_linear']:.3f} / nonlin "
        f"{row['content_r2_nonlinear']:.3f}; style R^2 lin {row['style_r2_linear']:.3f} / "
        f"nonlin {row['style_r2_nonlinear']:.3f}; style from true content (baseline) "
        f"{row['style_baseline_r2_nonlinear']:.3f} (population "
        f"{row['style_baseline_r2_population']:.3f})"
        + (
            "; paper (approx.) " + ", ".join(f"{k} {v:.2f}" for k, v in paper.items())
            if paper
            else ""
        )
        + f"; {row['seconds']:.0f} s",
        flush=True,
    )
    return row


# ---------------------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------------------


def plot_content_style(
    rows: Sequence[Mapping], path, overwrite: bool = False, *, dpi: int = 100
) -> str:
    """Grouped bars of the content and style R^2 (nonlinear) per row of
    ``content_style_study``, the style baseline marked as a black line over each style bar.

    Written as PNG through ``etils.epath`` (800 x 400 pixels at ``dpi=100``); an existing
    file is refused unless ``overwrite=True``. Returns ``path``.
    """
    from ssljax.evaluation import plots

    rows = list(rows)
    needed = (
        "variant",
        "content_r2_nonlinear",
        "style_r2_nonlinear",
        "style_baseline_r2_nonlinear",
    )
    if not rows:
        raise ValueError("rows is empty; pass the dicts content_style_study returns")
    for row in rows:
        missing = [k for k in needed if k not in row]
        if missing:
            raise ValueError(f"a row lacks {missing}; valid rows come from content_style_study")
    plots._check_target(path, overwrite)
    fig = plots._new_figure(8 * dpi, 4 * dpi, dpi)
    ax = fig.add_axes((0.09, 0.2, 0.88, 0.68))
    x = np.arange(len(rows))
    width = 0.38
    content = [float(r["content_r2_nonlinear"]) for r in rows]
    style = [float(r["style_r2_nonlinear"]) for r in rows]
    ax.bar(x - width / 2, content, width, label="content R$^2$ (nonlinear)", color="tab:blue")
    ax.bar(x + width / 2, style, width, label="style R$^2$ (nonlinear)", color="tab:orange")
    for i, row in enumerate(rows):
        base = float(row["style_baseline_r2_nonlinear"])
        ax.hlines(base, i, i + width, colors="k", lw=2)
    ax.plot([], [], "k-", lw=2, label="style from true content (baseline)")
    labels = [f"{r['variant']}\n{r.get('objective', '')}, p={r.get('p_change', '')}" for r in rows]
    ax.set_xticks(x, labels, fontsize=8)
    baselines = [float(r["style_baseline_r2_nonlinear"]) for r in rows]
    ax.set_ylim(min(0.0, *content, *style, *baselines) - 0.02, 1.05)
    ax.set_ylabel("held-out R$^2$")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.legend(fontsize=8, frameon=False, loc="upper center", ncol=3, bbox_to_anchor=(0.5, 1.14))
    return plots._save(fig, path, dpi)
