"""Nonlinear ICA with an auxiliary variable: time-contrastive learning and the iVAE.

Nonlinear ICA (``x = f(s)`` with independent sources ``s`` and an invertible ``f``) is not
identifiable from i.i.d. data alone (Hyvarinen & Pajunen 1999). It becomes identifiable when
the sources are independent *given* an observed auxiliary variable ``u`` whose value changes
their distributions enough:

* **Time-contrastive learning (TCL; Hyvarinen & Morioka 2016).** The data are cut into
  segments ``u`` within which each source has its own scale. A network ``h(x)`` followed by a
  multinomial logistic regression is trained to tell which segment a point came from. With
  enough segments (at least ``dim + 1`` when only the scales change: the rank condition of
  the paper's Theorem 1 on the per-segment modulations) and a feature
  nonlinearity matching the source's sufficient statistic (``|s|`` for Laplace sources, whose
  log-density in a segment is ``-sqrt(2) |s| / sigma_u + const``), the optimal features are an
  invertible *linear* map of ``(|s_1|, ..., |s_n|)``; linear ICA on the features then recovers
  each ``|s_i|`` (Theorem 1 of the paper, with FastICA in its simulations).
* **The identifiable VAE (iVAE; Khemakhem, Kingma, Monti & Hyvarinen 2020).** A VAE with a
  conditionally factorial prior ``p(z | u) = prod_i p_i(z_i | u)`` whose per-segment
  log-variances are learned, an encoder ``q(z | x, u)`` and a decoder ``p(x | z)`` with a
  small fixed noise variance. Under the same variability condition the maximum-likelihood
  model recovers the sources up to permutation and componentwise maps; a plain VAE with the
  segment-independent prior ``N(0, I)`` has no such guarantee (every rotation of its latents
  gives the same marginal likelihood).

What is compared with what:

* TCL features against ``|s|`` (Pearson MCC), raw and after FastICA, exactly as the authors'
  evaluation (``tcl_evaluation.py`` of Morioka's TCL code, FastICA then the correlation with
  ``np.abs(source)``). Against ``s`` itself the correlation is near zero by symmetry: TCL only
  ever sees the scale of each source, never its sign.
* iVAE posterior means against ``s`` (Pearson MCC), as in the iVAE paper and code.

Data: ``segmented_sources`` draws, for every segment and component, a standard deviation
``sigma`` log-uniformly in ``scale_range`` (``log sigma ~ U[log lo, log hi]``) and optionally a
mean uniformly in ``[-mean_range, mean_range]``; the component is then ``mean + sigma * e``
with ``e`` a unit-variance Laplace or Gaussian draw. The authors' codes draw ``sigma``
uniformly instead: TCL on ``[0, 1]`` (``gen_source_tcl``), the iVAE on ``[0.5, 3]``
(``var_bounds``, which multiply unit-variance sources, so they bound the standard deviation).
``TCL_SCALE_RANGE = (0.1, 1.0)`` keeps TCL's upper end and bounds sigma away from 0 (log sigma
then has standard deviation 0.66 instead of 1.0 for the uniform draw);
``IVAE_SCALE_RANGE = (0.5, 3.0)`` keeps the iVAE's bounds. The mixing is
``ssljax.identifiability.mixing``: for TCL a random invertible leaky-ReLU MLP of ``depth``
layers; for the iVAE (``ivae_dataset``) the authors' generator, one well-conditioned matrix
repeated in every layer with ``xtanh`` between layers.

The iVAE is trained as the authors' code trains it (``weighted_elbo``): the sampled ELBO split
into reconstruction, index-code mutual information, total correlation and dimension-wise KL
(Chen et al. 2018), reweighted. On the same data the plain negative ELBO gives a lower median
MCC (``ivae_study``'s ``ivae_elbo`` row).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.identifiability.mixing import apply_mixing, random_mixing
from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    Run,
    check_choice,
    check_int,
    check_range,
)

Array = jax.Array

DENSITIES = ("laplace", "gaussian")
ACTIVATIONS = ("maxout", "leaky_relu", "xtanh")
# The feature nonlinearity q of TCL: the sufficient statistic of the source density in a
# segment (|s| for Laplace, s^2 for Gaussian sources).
FEATURE_NONLINEARITIES = ("abs", "square")
PRIORS = ("gaussian", "laplace")
TCL_SCALE_RANGE = (0.1, 1.0)
IVAE_SCALE_RANGE = (0.5, 3.0)
# Negative slope of the mixing's leaky ReLU: the TCL authors' code uses 0.2, the iVAE's 0.1.
MIXING_SLOPE = 0.2

# Reported numbers of the papers, printed beside ours. Both are approximate values read off
# the papers' figures (no table gives them), so they say what to expect, not a digit to match.
TCL_PAPER = {
    "source": (
        "Hyvarinen & Morioka 2016 (NeurIPS), Fig. 2(a): mean absolute correlation between |s| "
        "and the FastICA-rotated TCL features against the number of segments, one curve per "
        "mixing depth L = 1..5; 20 Laplace sources, 512 points per segment, feature MLP with "
        "maxout units and abs() features (authors' code: hmorioka/TCL)"
    ),
    "setting": {"dim": 20, "points_per_segment": 512, "depths": (1, 2, 3, 4, 5)},
    "mcc_approx": (0.8, 0.9),
    "note": (
        "approximately, read off the figure (check it before quoting a digit): the "
        "correlation rises with the number of segments; at the largest counts around "
        "0.8-0.9, higher for L = 1 and lower for deep mixings"
    ),
}
IVAE_PAPER = {
    "source": (
        "Khemakhem, Kingma, Monti & Hyvarinen 2020 (AISTATS), Fig. 2(a): MCC of the posterior "
        "means with the true sources; 5-D sources, 40 segments x 1000 points, 3-layer "
        "mixing (authors' code ilkhem/iVAE, configs/ivae.yaml: xtanh mixing)"
    ),
    "setting": {"n_segments": 40, "points_per_segment": 1000, "dim": 5, "depth": 3},
    "ivae_mcc_approx": 0.95,
    "vae_mcc_approx": (0.5, 0.6),
    "note": (
        "approximately, read off the figure (check it before quoting a digit): iVAE about "
        "0.9 or more, VAE about 0.5-0.6"
    ),
}


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is unknown; valid: {', '.join(choices)}")


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= {low}")
    return int(value)


def _check_scale_range(scale_range: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in scale_range)
    if not 0.0 < lo <= hi:
        raise ValueError(
            f"scale_range={tuple(scale_range)!r} is invalid; valid: 0 < low <= high "
            "(standard deviations, drawn log-uniformly)"
        )
    return lo, hi


# ---------------------------------------------------------------------------------------
# Data: nonstationary sources, mixed
# ---------------------------------------------------------------------------------------


def segment_labels(n_segments: int, points_per_segment: int) -> np.ndarray:
    """``[0]*m + [1]*m + ...``: the segment of every point, in time order (int32)."""
    n_segments = _check_count("n_segments", n_segments)
    points_per_segment = _check_count("points_per_segment", points_per_segment)
    return np.repeat(np.arange(n_segments, dtype=np.int32), points_per_segment)


def segmented_sources(
    key: Array,
    *,
    n_segments: int,
    points_per_segment: int,
    dim: int,
    density: str = "laplace",
    scale_range: Sequence[float] = TCL_SCALE_RANGE,
    mean_range: float = 0.0,
    return_parameters: bool = False,
):
    """Nonstationary sources: independent components whose scale (and mean) change by segment.

    In segment ``u`` component ``i`` is ``mean[u, i] + scale[u, i] * e`` with ``e`` i.i.d.
    unit-variance Laplace (``density="laplace"``) or Gaussian draws; ``log scale[u, i]`` is
    uniform on ``[log lo, log hi]`` for ``scale_range = (lo, hi)`` and ``mean[u, i]`` uniform
    on ``[-mean_range, mean_range]`` (0: centred sources). Segments hold
    ``points_per_segment`` consecutive points each, so they are balanced.

    Returns:
      ``(s, segment)``: float32 ``[n_segments * points_per_segment, dim]`` and int32
      ``[n_segments * points_per_segment]``; with ``return_parameters=True`` also the drawn
      ``scale`` and ``mean``, float32 ``[n_segments, dim]`` each.

    Raises:
      ValueError: an unknown density, a count below 1 or an invalid range (one line).
    """
    _check_choice("density", density, DENSITIES)
    n_segments = _check_count("n_segments", n_segments)
    points_per_segment = _check_count("points_per_segment", points_per_segment)
    dim = _check_count("dim", dim)
    lo, hi = _check_scale_range(scale_range)
    if not float(mean_range) >= 0.0:
        raise ValueError(f"mean_range={mean_range!r} is invalid; valid: a float >= 0")
    k_scale, k_mean, k_noise = jax.random.split(key, 3)
    log_scale = jax.random.uniform(
        k_scale, (n_segments, dim), minval=math.log(lo), maxval=math.log(hi)
    )
    scale = np.asarray(jnp.exp(log_scale), np.float32)
    mean = np.asarray(
        jax.random.uniform(
            k_mean, (n_segments, dim), minval=-float(mean_range), maxval=float(mean_range)
        ),
        np.float32,
    )
    n = n_segments * points_per_segment
    if density == "laplace":
        # jax.random.laplace has scale 1 (variance 2).
        noise = jax.random.laplace(k_noise, (n, dim)) / math.sqrt(2.0)
    else:
        noise = jax.random.normal(k_noise, (n, dim))
    segment = segment_labels(n_segments, points_per_segment)
    s = np.asarray(noise, np.float32) * scale[segment] + mean[segment]
    if return_parameters:
        return s, segment, scale, mean
    return s, segment


def tcl_dataset(
    key: Array,
    n_segments: int,
    points_per_segment: int,
    dim: int,
    depth: int,
    *,
    density: str = "laplace",
    scale_range: Sequence[float] = TCL_SCALE_RANGE,
    mean_range: float = 0.0,
    negative_slope: float = MIXING_SLOPE,
    with_mixing: bool = False,
):
    """Segmented sources mixed by a random invertible leaky-ReLU MLP of ``depth`` layers.

    The sources come from ``segmented_sources`` with the first half of ``split(key)``, the
    mixing from ``random_mixing`` with the second.

    Returns:
      ``{'image': x, 'segment': u, 'source': s}`` (float32 ``[n, dim]``, int32 ``[n]``,
      float32 ``[n, dim]``), and the ``Mixing`` as well with ``with_mixing=True``.
    """
    k_source, k_mix = jax.random.split(key)
    s, u = segmented_sources(
        k_source,
        n_segments=n_segments,
        points_per_segment=points_per_segment,
        dim=dim,
        density=density,
        scale_range=scale_range,
        mean_range=mean_range,
    )
    mixing = random_mixing(k_mix, dim, depth, negative_slope=negative_slope)
    x = np.asarray(apply_mixing(mixing, s), np.float32)
    data = {"image": x, "segment": u, "source": s}
    return (data, mixing) if with_mixing else data


def standardize(x: Any) -> np.ndarray:
    """Each column of ``x`` at zero mean and unit variance (float32)."""
    x = np.asarray(x, np.float64)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def whiten(x: Any) -> np.ndarray:
    """PCA-whitened observations (zero mean, identity covariance), as the TCL authors'
    preprocessing; float32."""
    x = np.asarray(x, np.float64)
    xc = x - x.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(xc, rowvar=False).reshape(x.shape[1], x.shape[1]))
    eigval = np.maximum(eigval, np.finfo(np.float64).tiny)
    return (xc @ eigvec / np.sqrt(eigval)).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------


def _activate(h: Array, activation: str, negative_slope: float, maxout_k: int) -> Array:
    if activation == "maxout":
        return jnp.max(h.reshape(h.shape[:-1] + (h.shape[-1] // maxout_k, maxout_k)), axis=-1)
    if activation == "leaky_relu":
        return jax.nn.leaky_relu(h, negative_slope)
    # xtanh: tanh plus a linear term, invertible (iVAE code's activation).
    return jnp.tanh(h) + negative_slope * h


class MLP(nn.Module):
    """Hidden layers ``Dense -> activation`` of widths ``hidden_dims``, then ``Dense(out)``.

    ``maxout`` units take the maximum of ``maxout_k`` affine maps (Goodfellow et al. 2013), so
    a maxout layer of width ``w`` has a ``Dense(maxout_k * w)`` under it (parameters
    ``hidden{i}``, 1-based, and ``output``)."""

    hidden_dims: tuple[int, ...]
    output_dim: int
    activation: str = "leaky_relu"
    negative_slope: float = 0.2
    maxout_k: int = 2

    @nn.compact
    def __call__(self, x: Array) -> Array:
        pieces = self.maxout_k if self.activation == "maxout" else 1
        for i, width in enumerate(self.hidden_dims):
            h = nn.Dense(pieces * width, name=f"hidden{i + 1}")(x)
            x = _activate(h, self.activation, self.negative_slope, self.maxout_k)
        return nn.Dense(self.output_dim, name="output")(x)


class TCLNetwork(nn.Module):
    """TCL's feature extractor ``h(x) = q(MLP(x))`` and its multinomial logistic regression.

    Returns ``{'features': [B, feature_dim], 'logits': [B, num_segments]}``."""

    hidden_dims: tuple[int, ...]
    feature_dim: int
    num_segments: int
    activation: str = "maxout"
    negative_slope: float = 0.2
    maxout_k: int = 2
    feature_nonlinearity: str = "abs"

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> dict:
        del train
        pre = MLP(
            tuple(self.hidden_dims),
            self.feature_dim,
            self.activation,
            self.negative_slope,
            self.maxout_k,
            name="features",
        )(x)
        features = jnp.abs(pre) if self.feature_nonlinearity == "abs" else pre**2
        logits = nn.Dense(self.num_segments, name="classifier")(features)
        return {"features": features, "logits": logits}


def _check_network(obj) -> None:
    check_choice("activation", obj.activation, ACTIVATIONS)
    check_range("negative_slope", obj.negative_slope, low=0.0, high=1.0, low_open=True)
    check_int("maxout_k", obj.maxout_k, low=1)


def _data_dim(run: Run) -> int:
    shape = tuple(run.facts.image_shape)
    if len(shape) != 1:
        raise ValueError(f"observations have shape {shape} per example; valid: vectors (one axis)")
    return int(shape[0])


@dataclasses.dataclass(frozen=True)
class VectorObjective(Objective):
    """An objective over observation vectors ``[n, D]`` (``fit``'s ``batch['image']``): the
    model is ``self.network(D)`` and the one view is the observations as float32."""

    def network(self, data_dim: int):
        raise NotImplementedError

    def check(self, run):
        _data_dim(run)

    def build_model(self, run, axis_name):
        del axis_name
        return self.network(_data_dim(run))

    def make_views(self, rng, images, run):
        del rng, run
        return (images.astype(jnp.float32),)


@dataclasses.dataclass(frozen=True)
class TCL(VectorObjective):
    """Time-contrastive learning (Hyvarinen & Morioka 2016): classify each point's segment.

    The loss is the cross-entropy of ``batch['segment']`` under a multinomial logistic
    regression on the features ``h(x)``; chance level is ``log(num_segments)``.

    Attributes:
      num_segments: number of segments (classes); the paper's default code uses 256.
      hidden_dims: widths of the hidden layers of the feature MLP (the paper: 40 maxout units
        per layer for 20 sources, as many layers as the mixing has).
      feature_dim: width of the feature layer (None: the observation dimension).
      activation: ``maxout`` (the paper's), ``leaky_relu`` or ``xtanh``.
      negative_slope: slope of ``leaky_relu`` (or of the linear term of ``xtanh``).
      maxout_k: affine pieces per maxout unit (the paper's code: 2).
      feature_nonlinearity: ``abs`` (Laplace sources, the paper's) or ``square`` (Gaussian).
    """

    name: ClassVar[str] = "tcl"
    description: ClassVar[str] = "Time-contrastive learning (Hyvarinen & Morioka 2016)"

    num_segments: int = 256
    hidden_dims: tuple = (40, 40, 40, 40)
    feature_dim: int | None = None
    activation: str = "maxout"
    negative_slope: float = 0.2
    maxout_k: int = 2
    feature_nonlinearity: str = "abs"

    def __post_init__(self):
        check_int("num_segments", self.num_segments, low=2)
        _check_network(self)
        check_choice("feature_nonlinearity", self.feature_nonlinearity, FEATURE_NONLINEARITIES)
        for width in self.hidden_dims:
            check_int("hidden_dims", width, low=1)
        if self.feature_dim is not None:
            check_int("feature_dim", self.feature_dim, low=1)

    def network(self, data_dim: int) -> TCLNetwork:
        return TCLNetwork(
            hidden_dims=tuple(int(w) for w in self.hidden_dims),
            feature_dim=int(self.feature_dim or data_dim),
            num_segments=int(self.num_segments),
            activation=self.activation,
            negative_slope=float(self.negative_slope),
            maxout_k=int(self.maxout_k),
            feature_nonlinearity=self.feature_nonlinearity,
        )

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        del rng
        out = ctx.model.apply({"params": params}, views[0], train=True)
        labels = ctx.batch["segment"].astype(jnp.int32)
        loss = optax.softmax_cross_entropy_with_integer_labels(out["logits"], labels).mean()
        accuracy = jnp.mean(jnp.argmax(out["logits"], axis=-1) == labels)
        return loss, LossAux({"loss": loss, "accuracy": accuracy}, model_state, Outputs())


class IVAENetwork(nn.Module):
    """Encoder ``q(z | x, u)``, decoder mean ``f(z)`` and prior ``p(z | u)`` of the iVAE.

    ``__call__(x, segment=None, noise=None)`` returns the posterior ``mean`` and ``log_var``,
    the latent ``z`` (``mean + exp(log_var / 2) * noise``, or the mean when ``noise`` is
    None), the decoder mean ``reconstruction = f(z)`` and the prior's ``prior_mean`` and
    ``prior_log_var`` for each example (``[B, latent_dim]`` each). ``segment`` defaults to
    segment 0, so ``init(rng, x, train=False)`` creates every parameter.

    With ``conditional_prior`` the encoder reads ``[x, onehot(u)]`` and the prior's
    log-variances are a learned table ``prior_log_var [num_segments, latent_dim]`` (means: a
    learned table ``prior_mean`` with ``learn_prior_mean``, else 0); without it (the plain
    VAE) the encoder reads ``x`` alone and the prior is ``N(0, I)`` for every segment.
    """

    data_dim: int
    latent_dim: int
    num_segments: int
    hidden_dims: tuple[int, ...] = (50, 50)
    activation: str = "leaky_relu"
    negative_slope: float = 0.1
    maxout_k: int = 2
    conditional_prior: bool = True
    learn_prior_mean: bool = False

    def _mlp(self, output_dim: int, name: str) -> MLP:
        return MLP(
            tuple(self.hidden_dims),
            output_dim,
            self.activation,
            self.negative_slope,
            self.maxout_k,
            name=name,
        )

    @nn.compact
    def __call__(
        self,
        x: Array,
        segment: Array | None = None,
        noise: Array | None = None,
        train: bool = False,
    ) -> dict:
        del train
        x = x.astype(jnp.float32)
        if segment is None:
            segment = jnp.zeros(x.shape[:1], jnp.int32)
        segment = segment.astype(jnp.int32)
        if self.conditional_prior:
            inputs = jnp.concatenate([x, jax.nn.one_hot(segment, self.num_segments)], axis=-1)
        else:
            inputs = x
        # Separate MLPs for the posterior mean and log-variance, as in the authors' code.
        mean = self._mlp(self.latent_dim, "encoder_mean")(inputs)
        log_var = self._mlp(self.latent_dim, "encoder_log_var")(inputs)
        z = mean if noise is None else mean + jnp.exp(0.5 * log_var) * noise
        reconstruction = self._mlp(self.data_dim, "decoder")(z)
        shape = (self.num_segments, self.latent_dim)
        if self.conditional_prior:
            prior_log_var = self.param("prior_log_var", nn.initializers.zeros, shape)[segment]
            if self.learn_prior_mean:
                prior_mean = self.param("prior_mean", nn.initializers.zeros, shape)[segment]
            else:
                prior_mean = jnp.zeros_like(mean)
        else:
            prior_log_var = jnp.zeros_like(mean)
            prior_mean = jnp.zeros_like(mean)
        return {
            "mean": mean,
            "log_var": log_var,
            "z": z,
            "reconstruction": reconstruction,
            "prior_mean": prior_mean,
            "prior_log_var": prior_log_var,
        }


LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mean_q, log_var_q, mean_p, log_var_p) -> Array:
    """``KL(N(mean_q, e^log_var_q) || N(mean_p, e^log_var_p))`` (diagonal), summed over the
    last axis: ``0.5 sum(log_var_p - log_var_q + (e^log_var_q + (mean_q - mean_p)^2) /
    e^log_var_p - 1)``."""
    return 0.5 * jnp.sum(
        log_var_p
        - log_var_q
        + (jnp.exp(log_var_q) + (mean_q - mean_p) ** 2) * jnp.exp(-log_var_p)
        - 1.0,
        axis=-1,
    )


def gaussian_log_density(x, mean, log_var) -> Array:
    """``log N(x; mean, e^log_var)`` summed over the last axis."""
    return jnp.sum(-0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * jnp.exp(-log_var)), axis=-1)


def laplace_log_density(x, mean, log_var) -> Array:
    """``log Laplace(x; mean, b)`` with variance ``e^log_var = 2 b^2``, summed over the last
    axis."""
    b = jnp.exp(0.5 * log_var) / math.sqrt(2.0)
    return jnp.sum(-jnp.log(2.0 * b) - jnp.abs(x - mean) / b, axis=-1)


def negative_elbo(
    x: Array,
    reconstruction: Array,
    *,
    decoder_var: float,
    mean: Array,
    log_var: Array,
    z: Array,
    prior_mean: Array,
    prior_log_var: Array,
    prior: str = "gaussian",
) -> tuple[Array, Array]:
    """The two terms of the negative ELBO per example: ``(nll [B], kl [B])``.

    ``nll = -log N(x; reconstruction, decoder_var I)`` at the sampled ``z``, and ``kl`` is
    ``KL(q(z | x, u) || p(z | u))``: in closed form for a Gaussian prior; for a Laplace prior
    the one-sample estimate ``log q(z | x, u) - log p(z | u)`` at the same ``z`` (Kingma &
    Welling 2014; the iVAE code estimates every term from one sample). The negative ELBO is
    ``nll + kl``.
    """
    _check_choice("prior", prior, PRIORS)
    log_dec = jnp.full_like(x, math.log(decoder_var))
    nll = -gaussian_log_density(x, reconstruction, log_dec)
    if prior == "gaussian":
        kl = gaussian_kl(mean, log_var, prior_mean, prior_log_var)
    else:
        kl = gaussian_log_density(z, mean, log_var) - laplace_log_density(
            z, prior_mean, prior_log_var
        )
    return nll, kl


def weighted_elbo(
    x: Array,
    reconstruction: Array,
    *,
    decoder_var: float,
    mean: Array,
    log_var: Array,
    z: Array,
    prior_mean: Array,
    prior_log_var: Array,
    weights: Sequence[float],
    prior: str = "gaussian",
) -> dict[str, Array]:
    """The iVAE authors' reweighted negative ELBO (ilkhem/iVAE, ``cleanIVAE.elbo``), per
    example, with Chen et al. (2018)'s split of the sampled KL estimated on the minibatch.

    With ``weights = (a, b, c, d)`` the loss per example is
    ``-(a log p(x|z) - b [log q(z|x,u) - log q(z)] - c [log q(z) - sum_i log q(z_i)]
    - d [sum_i log q(z_i) - log p(z|u)])``: reconstruction, index-code mutual information,
    total correlation and dimension-wise KL to the conditional prior. ``(1, 1, 1, 1)`` is the
    one-sample negative ELBO. ``q(z)`` and ``q(z_i)`` are minibatch-weighted estimates over the
    rows of ``mean``/``log_var`` (their constant ``log M`` cancels in the gradients).

    Returns:
      ``{'loss', 'nll', 'mutual_info', 'total_correlation', 'dimwise_kl'}``, each ``[B]``.
    """
    from ssljax.objectives.latent import minibatch_log_densities

    _check_choice("prior", prior, PRIORS)
    if len(weights) != 4 or min(float(w) for w in weights) < 0:
        raise ValueError(
            f"weights={tuple(weights)!r} is invalid; valid: four numbers >= 0 (a, b, c, d)"
        )
    a, b, c, d = (float(w) for w in weights)
    nll = -gaussian_log_density(x, reconstruction, jnp.full_like(x, math.log(decoder_var)))
    log_q_zx = gaussian_log_density(z, mean, log_var)
    if prior == "gaussian":
        log_p_zu = gaussian_log_density(z, prior_mean, prior_log_var)
    else:
        log_p_zu = laplace_log_density(z, prior_mean, prior_log_var)
    log_qz, log_qzi = minibatch_log_densities(z, mean, log_var)
    log_prod = jnp.sum(log_qzi, axis=-1)
    terms = {
        "nll": nll,
        "mutual_info": log_q_zx - log_qz,
        "total_correlation": log_qz - log_prod,
        "dimwise_kl": log_prod - log_p_zu,
    }
    terms["loss"] = (
        a * nll
        + b * terms["mutual_info"]
        + c * terms["total_correlation"]
        + d * terms["dimwise_kl"]
    )
    return terms


@dataclasses.dataclass(frozen=True)
class IVAE(VectorObjective):
    """The identifiable VAE (Khemakhem et al. 2020): the negative ELBO with a prior
    conditioned on the segment ``batch['segment']``; ``conditional_prior=False`` is the plain
    VAE baseline (prior ``N(0, I)``, encoder on ``x`` alone, as the paper's VAE).

    Attributes:
      num_segments: number of segments (rows of the prior's tables).
      latent_dim: latent dimension (None: the observation dimension).
      hidden_dims: hidden widths of every MLP (the authors' code: 3 Dense layers, 50 units).
      activation: ``leaky_relu`` (the authors' default), ``xtanh`` or ``maxout``.
      negative_slope: leaky ReLU slope (the authors' code: 0.1).
      maxout_k: affine pieces per maxout unit.
      decoder_var: fixed variance of ``p(x | z)`` (the authors' code: 0.01).
      prior: ``gaussian`` or ``laplace`` conditionals ``p(z_i | u)``.
      conditional_prior: learn per-segment prior log-variances (iVAE) or not (VAE).
      learn_prior_mean: also learn per-segment prior means (sources with segment means).
      weights: None for the negative ELBO with the closed-form KL, or ``(a, b, c, d)`` for
        ``weighted_elbo`` (the authors' configs: ``(100, 1, 0, 10)`` for the iVAE and
        ``(1000, 1, 1, 1)`` for the VAE).
    """

    name: ClassVar[str] = "ivae"
    description: ClassVar[str] = "Identifiable VAE with a segment-conditioned prior (2020)"

    num_segments: int = 40
    latent_dim: int | None = None
    hidden_dims: tuple = (50, 50)
    activation: str = "leaky_relu"
    negative_slope: float = 0.1
    maxout_k: int = 2
    decoder_var: float = 0.01
    prior: str = "gaussian"
    conditional_prior: bool = True
    learn_prior_mean: bool = False
    weights: tuple | None = None

    def __post_init__(self):
        check_int("num_segments", self.num_segments, low=1)
        if self.weights is not None and (
            len(self.weights) != 4 or min(float(w) for w in self.weights) < 0
        ):
            raise ValueError(
                f"weights={tuple(self.weights)!r} is invalid; valid: None or four numbers >= 0 "
                "(a, b, c, d)"
            )
        _check_network(self)
        check_choice("prior", self.prior, PRIORS)
        check_range("decoder_var", self.decoder_var, low=0.0, low_open=True)
        for width in self.hidden_dims:
            check_int("hidden_dims", width, low=1)
        if self.latent_dim is not None:
            check_int("latent_dim", self.latent_dim, low=1)

    def network(self, data_dim: int) -> IVAENetwork:
        return IVAENetwork(
            data_dim=int(data_dim),
            latent_dim=int(self.latent_dim or data_dim),
            num_segments=int(self.num_segments),
            hidden_dims=tuple(int(w) for w in self.hidden_dims),
            activation=self.activation,
            negative_slope=float(self.negative_slope),
            maxout_k=int(self.maxout_k),
            conditional_prior=bool(self.conditional_prior),
            learn_prior_mean=bool(self.learn_prior_mean),
        )

    def _elbo_inputs(self, model, params, x, segment, noise) -> dict:
        """The network's outputs as keyword arguments of ``negative_elbo``/``weighted_elbo``."""
        out = model.apply({"params": params}, x, segment, noise)
        keys = ("mean", "log_var", "z", "prior_mean", "prior_log_var")
        return {
            "x": x.astype(jnp.float32),
            "reconstruction": out["reconstruction"],
            "decoder_var": float(self.decoder_var),
            "prior": self.prior,
            **{k: out[k] for k in keys},
        }

    def elbo_terms(self, model, params, x, segment, noise) -> tuple[Array, Array]:
        """``negative_elbo``'s ``(nll, kl)`` per example for the reparameterisation ``noise``
        (``[B, latent_dim]`` standard normal draws)."""
        return negative_elbo(**self._elbo_inputs(model, params, x, segment, noise))

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        x = views[0]
        latent = int(self.latent_dim or x.shape[-1])
        noise = jax.random.normal(rng, (x.shape[0], latent), jnp.float32)
        inputs = self._elbo_inputs(ctx.model, params, x, ctx.batch["segment"], noise)
        if self.weights is None:
            nll, kl = negative_elbo(**inputs)
            loss = jnp.mean(nll + kl)
            metrics = {"loss": loss, "nll": jnp.mean(nll), "kl": jnp.mean(kl)}
        else:
            terms = weighted_elbo(weights=self.weights, **inputs)
            metrics = {k: jnp.mean(v) for k, v in terms.items()}
            loss = metrics["loss"]
        return loss, LossAux(metrics, model_state, Outputs())


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


def _batched_apply(fn, arrays: Sequence[np.ndarray], batch: int = 8192) -> np.ndarray:
    n = arrays[0].shape[0]
    return np.concatenate(
        [np.asarray(fn(*(a[i : i + batch] for a in arrays))) for i in range(0, n, batch)]
    )


def tcl_features(objective: TCL, params, x: Any) -> np.ndarray:
    """The features ``h(x)`` (before the classifier) of a TCL network, float32 ``[n, d]``."""
    x = np.asarray(x, np.float32)
    model = objective.network(x.shape[-1])
    fn = jax.jit(lambda v: model.apply({"params": params}, v)["features"])
    return _batched_apply(fn, [x])


def posterior_means(objective: IVAE, params, x: Any, segment: Any) -> np.ndarray:
    """The posterior means ``E[z | x, u]`` of an iVAE or VAE, float32 ``[n, latent_dim]``."""
    x = np.asarray(x, np.float32)
    segment = np.asarray(segment, np.int32)
    model = objective.network(x.shape[-1])
    fn = jax.jit(lambda v, u: model.apply({"params": params}, v, u)["mean"])
    return _batched_apply(fn, [x, segment])


def ica_rotated(features: Any, seed: int = 0) -> np.ndarray:
    """FastICA (scikit-learn, ``logcosh``) applied to ``features``: the linear-ICA step of
    TCL (Hyvarinen & Morioka 2016)."""
    from ssljax.identifiability.linear import fastica_unmixing

    f = np.asarray(features, np.float64)
    W = fastica_unmixing(f, seed=seed)
    return (f - f.mean(axis=0)) @ W.T


def tcl_mcc(features: Any, sources: Any, *, seed: int = 0) -> dict:
    """MCC of TCL features with ``|s|``: ``{'mcc': raw, 'mcc_ica': after FastICA}``."""
    from ssljax.identifiability.metrics import mean_correlation_coefficient

    target = np.abs(np.asarray(sources, np.float64))
    features = np.asarray(features, np.float64)
    out = {"mcc": mean_correlation_coefficient(features, target)}
    if np.all(np.std(features, axis=0) > 0):
        out["mcc_ica"] = mean_correlation_coefficient(ica_rotated(features, seed), target)
    else:  # a dead feature makes the whitening singular
        out["mcc_ica"] = float("nan")
    return out


# ---------------------------------------------------------------------------------------
# Studies
# ---------------------------------------------------------------------------------------

# CPU size: 5 sources, so 4 segments sit below the dim + 1 = 6 that identifiability needs.
TCL_CPU = {
    "segments": (4, 8, 16, 32, 64),
    "depths": (1, 2, 3),
    "dim": 5,
    "points_per_segment": 256,
    "hidden": 20,
    "steps": 2000,
    "batch_size": 256,
    "learning_rate": 1e-2,
}
# The paper's data and network sizes (hmorioka/TCL: 20 sources, 512 points per segment,
# 40 maxout units per hidden layer, batch 512). The paper trains 7e5 momentum-SGD steps;
# with Adam we default to 1e5.
TCL_FULL = {
    "segments": (8, 16, 32, 64, 128, 256, 512),
    "depths": (1, 2, 3, 4, 5),
    "dim": 20,
    "points_per_segment": 512,
    "hidden": 40,
    "steps": 100_000,
    "batch_size": 512,
    "learning_rate": 1e-3,
}
# CPU size: the authors' 20 epochs and learning rate, with batches of 256 (3,125 steps).
# The authors' configs/ivae.yaml and vae.yaml: Adam at lr 0.01, batch 64, 20 epochs of 40,000
# points (12,500 steps); MLPs of 3 Dense layers with 100 hidden units and xtanh (slope 0.1);
# decoder variance 0.1; the reweighted ELBO with (a, b, c, d) = (100, 1, 0, 10) for the iVAE
# and (1000, 1, 1, 1) for the VAE. The CPU size trains 5,000 steps on 3 seeds, the full one
# the authors' 12,500 on 10.
IVAE_FULL = {
    "steps": 12_500,
    "batch_size": 64,
    "learning_rate": 1e-2,
    "hidden": 100,
    "seeds": 10,
}
IVAE_CPU = dict(IVAE_FULL, steps=5_000, seeds=3)
IVAE_MODEL = {"activation": "xtanh", "negative_slope": 0.1, "decoder_var": 0.1}
IVAE_WEIGHTS = {"ivae": (100.0, 1.0, 0.0, 10.0), "vae": (1000.0, 1.0, 1.0, 1.0)}
# The study's three models: (conditional prior, weights). ``ivae_elbo`` is the ablation that
# trains the iVAE on the plain negative ELBO.
IVAE_MODELS = {
    "ivae": (True, IVAE_WEIGHTS["ivae"]),
    "vae": (False, IVAE_WEIGHTS["vae"]),
    "ivae_elbo": (True, None),
}


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, flush=True)


def _fit(objective, data, *, steps, batch_size, learning_rate, seed, weight_decay=0.0):
    from ssljax.identifiability.fit import fit

    return fit(
        objective,
        data,
        steps=steps,
        batch_size=min(batch_size, data["image"].shape[0]),
        learning_rate=learning_rate,
        seed=seed,
        weight_decay=weight_decay,
    )


def tcl_study(
    *,
    segments: Sequence[int] | None = None,
    depths: Sequence[int] | None = None,
    dim: int | None = None,
    points_per_segment: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    full: bool = False,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    verbose: bool = True,
) -> list[dict]:
    """TCL's MCC against the number of segments and the mixing depth (Hyvarinen & Morioka
    2016, Fig. 2a).

    For every ``(depth, n_segments)``: Laplace sources (``TCL_SCALE_RANGE``), a random
    leaky-ReLU mixing of ``depth`` layers, PCA whitening (as the authors' code), and a TCL
    network with ``depth - 1`` maxout layers (``hidden`` units: 40 in the paper for 20
    sources, 20 at the CPU size for 5) and ``dim`` abs() features, trained with Adam(W)
    (weight decay 1e-4, the paper's L2 weight) and a cosine decay. Settings left at None
    come from ``TCL_CPU`` (a few minutes on two cores) or, with ``full=True``, from
    ``TCL_FULL`` (the paper's sizes).

    Returns:
      One dict per run: ``depth``, ``n_segments``, ``dim``, ``points_per_segment``, ``steps``,
      ``mcc`` (features vs ``|s|``), ``mcc_ica`` (after FastICA), ``mcc_untrained`` and
      ``mcc_untrained_ica`` (a freshly initialised network), ``final_loss`` (mean of the last
      tenth of the steps), ``chance_loss`` (``log n_segments``), ``accuracy`` (training
      points), ``seconds`` (training).
    """
    base = TCL_FULL if full else TCL_CPU
    segments = tuple(base["segments"] if segments is None else segments)
    depths = tuple(base["depths"] if depths is None else depths)
    dim = _check_count("dim", base["dim"] if dim is None else dim)
    points = base["points_per_segment"] if points_per_segment is None else points_per_segment
    points = _check_count("points_per_segment", points)
    steps = _check_count("steps", base["steps"] if steps is None else steps)
    batch_size = base["batch_size"] if batch_size is None else batch_size
    learning_rate = base["learning_rate"] if learning_rate is None else learning_rate
    hidden = base["hidden"]
    for n_seg in segments:
        _check_count("n_segments", n_seg, low=2)
    for depth in depths:
        _check_count("depth", depth)
    rows = []
    for depth in depths:
        for n_seg in segments:
            key = jax.random.fold_in(jax.random.PRNGKey(seed), 1000 * depth + n_seg)
            data = tcl_dataset(key, n_seg, points, dim, depth)
            x = whiten(data["image"])
            objective = TCL(num_segments=n_seg, hidden_dims=(hidden,) * (depth - 1))
            result = _fit(
                objective,
                {"image": x, "segment": data["segment"]},
                steps=steps,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=seed,
                weight_decay=1e-4,
            )
            model = objective.network(dim)
            init = jax.jit(model.init)(jax.random.PRNGKey(seed + 1), x[:1])["params"]
            untrained = tcl_mcc(tcl_features(objective, init, x), data["source"], seed=seed)
            scores = tcl_mcc(tcl_features(objective, result.params, x), data["source"], seed=seed)
            logits = jax.jit(model.apply)({"params": result.params}, x)["logits"]
            row = {
                "depth": int(depth),
                "n_segments": int(n_seg),
                "dim": dim,
                "points_per_segment": points,
                "steps": steps,
                "mcc": scores["mcc"],
                "mcc_ica": scores["mcc_ica"],
                "mcc_untrained": untrained["mcc"],
                "mcc_untrained_ica": untrained["mcc_ica"],
                "final_loss": float(np.mean(result.losses[-max(1, steps // 10) :])),
                "chance_loss": math.log(n_seg),
                "accuracy": float(np.mean(np.argmax(logits, -1) == data["segment"])),
                "seconds": float(result.seconds),
            }
            rows.append(row)
            _say(
                verbose,
                f"TCL depth {depth} segments {n_seg:4d}: MCC {row['mcc']:.3f} "
                f"(FastICA {row['mcc_ica']:.3f}; untrained {row['mcc_untrained']:.3f} / "
                f"{row['mcc_untrained_ica']:.3f}), loss {row['final_loss']:.3f} of chance "
                f"{row['chance_loss']:.3f}, {row['seconds']:.1f} s",
            )
    return rows


def ivae_dataset(
    key: Array,
    n_segments: int,
    points_per_segment: int,
    dim: int,
    depth: int,
    *,
    with_mixing: bool = False,
):
    """The iVAE paper's data (the authors' ``generate_data`` as configured in
    ``configs/ivae.yaml``): centred Gaussian sources whose scales change by segment
    (``IVAE_SCALE_RANGE``), mixed by ``depth`` layers of one shared well-conditioned matrix
    with ``xtanh`` (slope 0.1) between them and no biases.

    Returns:
      ``{'image': x, 'segment': u, 'source': s}`` as ``tcl_dataset`` (and the ``Mixing`` with
      ``with_mixing=True``).
    """
    k_source, k_mix = jax.random.split(key)
    s, u = segmented_sources(
        k_source,
        n_segments=n_segments,
        points_per_segment=points_per_segment,
        dim=dim,
        density="gaussian",
        scale_range=IVAE_SCALE_RANGE,
    )
    mixing = random_mixing(
        k_mix,
        dim,
        depth,
        negative_slope=0.1,
        activation="xtanh",
        matrices="uniform",
        shared=True,
        bias_scale=0.0,
    )
    x = np.asarray(apply_mixing(mixing, s), np.float32)
    data = {"image": x, "segment": u, "source": s}
    return (data, mixing) if with_mixing else data


def ivae_study(
    *,
    n_segments: int = 40,
    points_per_segment: int = 1000,
    dim: int = 5,
    depth: int = 3,
    steps: int | None = None,
    seed: int = 0,
    full: bool = False,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    models: Sequence[str] = tuple(IVAE_MODELS),
    seeds: Sequence[int] | None = None,
    verbose: bool = True,
) -> dict:
    """MCC of the iVAE against the plain VAE (Khemakhem et al. 2020, Fig. 2a).

    Data and models follow the authors' code (``ivae_dataset``, ``IVAE_MODEL``): both
    models share the encoder, decoder and Gaussian likelihood; the iVAE's prior has learned
    per-segment log-variances, the VAE's is ``N(0, I)`` and its encoder does not see the
    segment. Each trains the authors' reweighted ELBO (``weighted_elbo``, ``IVAE_WEIGHTS``);
    ``ivae_elbo`` is the iVAE on the plain negative ELBO, which shows what the reweighting
    contributes. MCC (Pearson) is between the posterior means and the sources. Training
    settings come from ``IVAE_CPU`` or, with ``full=True``, ``IVAE_FULL`` unless given; the
    learning rate follows a cosine decay (the authors divide it by 10 on plateaus).

    One seed swings the MCC by about 0.1, so the study repeats over ``seeds`` (default
    ``seed, seed + 1, ...``, ``IVAE_CPU['seeds']`` or ``IVAE_FULL['seeds']`` of them), each
    with its own data, mixing and initialisation, and reports medians, as the paper reports
    distributions over seeds.

    Returns:
      ``{'setting': {...}, 'paper': IVAE_PAPER, 'ivae_above_vae': [bool per seed],
      <model>: {...}}`` for each of ``models`` (``ivae``, ``vae``, ``ivae_elbo``), each holding
      the medians over seeds of ``mcc``, ``mcc_untrained`` (a freshly initialised network)
      and ``final_loss`` (mean training loss over the last tenth of the steps), plus
      ``mcc_per_seed``, ``weights`` and ``seconds`` (all seeds).
    """
    base = IVAE_FULL if full else IVAE_CPU
    steps = _check_count("steps", base["steps"] if steps is None else steps)
    batch_size = base["batch_size"] if batch_size is None else batch_size
    learning_rate = base["learning_rate"] if learning_rate is None else learning_rate
    seeds = tuple(int(k) for k in (range(seed, seed + base["seeds"]) if seeds is None else seeds))
    if not seeds:
        raise ValueError("seeds is empty; valid: one or more integers")
    for name in models:
        _check_choice("model", name, tuple(IVAE_MODELS))
    hidden = (base["hidden"], base["hidden"])
    out: dict[str, Any] = {
        "setting": {
            "n_segments": int(n_segments),
            "points_per_segment": int(points_per_segment),
            "dim": int(dim),
            "depth": int(depth),
            "steps": steps,
            "batch_size": int(batch_size),
            "learning_rate": float(learning_rate),
            "hidden_dims": hidden,
            **IVAE_MODEL,
            "seeds": list(seeds),
        },
        "paper": IVAE_PAPER,
    }
    runs: dict[str, list[dict]] = {label: [] for label in models}
    for k in seeds:
        # Each seed draws its own sources and mixing, and initialises the models afresh.
        data = ivae_dataset(jax.random.PRNGKey(k), n_segments, points_per_segment, dim, depth)
        for label in models:
            runs[label].append(_ivae_run(label, data, hidden, steps, batch_size, learning_rate, k))
            _say(
                verbose,
                f"{label.upper()} seed {k}: MCC {runs[label][-1]['mcc']:.3f} (untrained "
                f"{runs[label][-1]['mcc_untrained']:.3f}), loss "
                f"{runs[label][-1]['final_loss']:.3f}, {runs[label][-1]['seconds']:.1f} s",
            )
    for label in models:
        per_seed = runs[label]
        out[label] = {
            "mcc": float(np.median([r["mcc"] for r in per_seed])),
            "mcc_untrained": float(np.median([r["mcc_untrained"] for r in per_seed])),
            "mcc_per_seed": [r["mcc"] for r in per_seed],
            "final_loss": float(np.median([r["final_loss"] for r in per_seed])),
            "weights": None if IVAE_MODELS[label][1] is None else list(IVAE_MODELS[label][1]),
            "seconds": float(sum(r["seconds"] for r in per_seed)),
        }
    if "ivae" in runs and "vae" in runs:
        out["ivae_above_vae"] = [
            bool(a["mcc"] > b["mcc"]) for a, b in zip(runs["ivae"], runs["vae"])
        ]
    return out


def _ivae_run(label, data, hidden, steps, batch_size, learning_rate, seed) -> dict:
    """Trains the study's model ``label`` on ``data`` and measures its MCC."""
    from ssljax.identifiability.metrics import mean_correlation_coefficient

    conditional, weights = IVAE_MODELS[label]
    objective = IVAE(
        num_segments=int(np.max(data["segment"])) + 1,
        hidden_dims=hidden,
        conditional_prior=conditional,
        weights=weights,
        **IVAE_MODEL,
    )
    x = data["image"]
    train = {"image": x, "segment": data["segment"]}
    result = _fit(
        objective, train, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed
    )
    z = posterior_means(objective, result.params, x, data["segment"])
    init = jax.jit(objective.network(x.shape[-1]).init)(jax.random.PRNGKey(seed + 1), x[:1])
    z0 = posterior_means(objective, init["params"], x, data["segment"])
    return {
        "mcc": mean_correlation_coefficient(z, data["source"]),
        "mcc_untrained": mean_correlation_coefficient(z0, data["source"]),
        "final_loss": float(np.mean(result.losses[-max(1, steps // 10) :])),
        "seconds": float(result.seconds),
    }


def plot_tcl(rows: Sequence[dict], path, *, key: str = "mcc_ica", overwrite: bool = False):
    """MCC (``row[key]``) against the number of segments, one line per mixing depth, as a PNG
    at ``path`` (through ``etils.epath``; an existing file is kept unless ``overwrite``).

    Returns:
      The path written.
    """
    from etils import epath
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("rows is empty; valid: the rows tcl_study returns")
    if key not in rows[0]:
        raise ValueError(f"key={key!r} is not in the rows; valid: {', '.join(sorted(rows[0]))}")
    target = epath.Path(path)
    if not os.fspath(path).lower().endswith(".png"):
        raise ValueError(f"figure path {os.fspath(path)} must end in .png")
    if target.exists() and not overwrite:
        raise ValueError(f"{os.fspath(path)} exists; pass overwrite=True to replace it")
    fig = Figure(figsize=(5.0, 3.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for depth in sorted({int(r["depth"]) for r in rows}):
        pts = sorted((int(r["n_segments"]), float(r[key])) for r in rows if r["depth"] == depth)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"L = {depth}")
    ax.set_xscale("log", base=2)
    ticks = sorted({int(r["n_segments"]) for r in rows})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("number of segments")
    ax.set_ylabel(f"MCC with |s| ({key})")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(title="mixing depth")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(buffer.getvalue())
    return os.fspath(path)


__all__ = [
    "ACTIVATIONS",
    "DENSITIES",
    "FEATURE_NONLINEARITIES",
    "IVAE",
    "IVAE_PAPER",
    "IVAE_MODEL",
    "IVAE_MODELS",
    "IVAE_SCALE_RANGE",
    "IVAE_WEIGHTS",
    "IVAENetwork",
    "PRIORS",
    "TCL",
    "TCLNetwork",
    "TCL_PAPER",
    "TCL_SCALE_RANGE",
    "gaussian_kl",
    "ica_rotated",
    "ivae_dataset",
    "ivae_study",
    "negative_elbo",
    "weighted_elbo",
    "plot_tcl",
    "posterior_means",
    "segment_labels",
    "segmented_sources",
    "standardize",
    "tcl_dataset",
    "tcl_features",
    "tcl_mcc",
    "tcl_study",
    "whiten",
]
