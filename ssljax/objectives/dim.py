"""Deep InfoMax (Hjelm et al. 2019) as a typed objective: global and local MI maximisation.

The encoder maps an image to a feature map ``M`` (an intermediate layer it sows, e.g.
``block3``) and, through its remaining layers and the projector, to the global vector ``Y``.
DIM maximises, with a critic trained jointly,

    alpha * I(M; Y)  +  beta * mean over locations l of I(M_l; Y)  (+ prior matching)

(Hjelm et al. 2019's global and local objectives). Critics score by dot products of learned
embeddings (``ssljax.models.critics.DIMNetwork``): the global critic compares ``Y`` with the
flattened map ``M`` of every image, the local critic ``Y`` with the feature vector of every
location of every image, so each location gives a ``[B, B]`` score matrix with the joint pairs
on the diagonal and the other images' features as negatives. Any bound of
``ssljax.objectives.mutual_information`` then applies:

  ``jsd``      DIM's JSD estimator: the loss is the JS f-GAN objective, the reported MI the
               NWJ value of ``js_bound``; the paper's default, stable.
  ``dv``       Donsker-Varadhan (MINE's bound).
  ``mine``     DV with MINE's moving-average gradient; the averages live in ``TrainState.extra``
               (``MineAverages``).
  ``infonce``  InfoNCE over the ``B`` candidates of a location (the paper's best, capped at
               ``log B``).
  ``nwj``, ``smile``  also available.

The loss is ``-(alpha * I_global + beta * I_local) + gamma * prior_term``. Settings that are
ours: negatives of a location are the other images' features *at the same location* (DIM's
code also uses other locations); critics are separable for the global objective too (the
paper concatenates ``Y`` with ``M`` into an MLP), so every estimator sees a full score matrix.

Prior matching (optional, ``gamma > 0``): a discriminator ``D`` separates ``sigmoid(Y)`` from
samples of the uniform prior on ``[0, 1]^d``; ``D`` minimises its logistic loss (``Y`` held
fixed) and the encoder minimises ``-log D(sigmoid(Y))`` (``D`` held fixed), the non-saturating
form of DIM's min-max game (ours), both in one gradient step via stop-gradients.

Two views (``cross_view``, ours, in the spirit of AMDIM, Bachman et al. 2019): each image is
augmented twice and ``Y`` of one view is scored against the feature maps of the other view,
in both directions, so the features must also agree across augmentations.

Multi-device: keys are gathered from every device, each device scores its own queries
against the global batch, and the bounds' partition terms are global (``axis_name``), so the
device mean of the loss is the loss of the global batch.

Hyperparameters (the fields of ``DIM``, ``config.objective``): ``estimator``,
``global_weight`` (alpha), ``local_weight`` (beta), ``prior_weight`` (gamma),
``mine_momentum``, ``smile_clip``, ``cross_view``.
``config.model``: ``encoder`` + ``encoder_kwargs``, ``projector`` (the ``Y`` head) and
``dim`` (``local_layer``, ``critic_hidden``, ``critic_embed``, ``critic_layers``,
``prior_hidden``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import flax.struct
import jax
import jax.numpy as jnp

from ssljax.objectives import mutual_information as mi
from ssljax.objectives.base import (
    LossAux,
    LossContext,
    Objective,
    Outputs,
    Run,
    UpdateContext,
    check_choice,
    check_range,
)
from ssljax.objectives.contrastive import gather_batch
from ssljax.objectives.registry import register

ESTIMATORS = ("jsd", "dv", "mine", "infonce", "nwj", "smile")


# ---------------------------------------------------------------------------------------------
# State and outputs.


@jax.tree_util.register_pytree_with_keys_class
@dataclasses.dataclass(frozen=True)
class MineAverages:
    """MINE's moving averages between steps (estimator ``mine``): one ``MineState`` entry per
    score matrix of a step, for the global and the local term (None: the term is off).

    In the pytree (and so in checkpoints) they are named ``global`` and ``local``, the keys
    of earlier checkpoints; ``global`` is a Python keyword, hence the attribute ``global_``.
    A term that is off has no entry at all, as the earlier dict had no key for it.
    """

    global_: mi.MineState | None = None
    local: mi.MineState | None = None

    NAMES: ClassVar[tuple[tuple[str, str], ...]] = (("global", "global_"), ("local", "local"))

    def tree_flatten_with_keys(self):
        present = [
            (key, getattr(self, attr))
            for key, attr in self.NAMES
            if getattr(self, attr) is not None
        ]
        children = tuple((jax.tree_util.GetAttrKey(key), value) for key, value in present)
        return children, tuple(key for key, _ in present)

    def tree_flatten(self):
        children, keys = self.tree_flatten_with_keys()
        return tuple(value for _, value in children), keys

    @classmethod
    def tree_unflatten(cls, keys, children):
        attrs = dict(cls.NAMES)
        return cls(**{attrs[key]: value for key, value in zip(keys, children)})

    def replace(self, **updates) -> "MineAverages":
        return dataclasses.replace(self, **updates)


@flax.struct.dataclass
class DIMOutputs(Outputs):
    """The embedding ``Y`` of the first view and, with MINE, the step's new averages."""

    mine: MineAverages | None = None
    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("embedding",)


# ---------------------------------------------------------------------------------------------
# Model and views.


def dim_model_settings(run: Run) -> dict:
    """``run.model.dim``'s critic and discriminator settings, with their defaults."""
    dim = run.model.get("dim", {})
    return dict(
        local_layer=str(dim.get("local_layer", "block3")),
        critic_hidden=int(dim.get("critic_hidden", 512)),
        critic_embed=int(dim.get("critic_embed", 512)),
        critic_layers=int(dim.get("critic_layers", 1)),
        prior_hidden=tuple(int(w) for w in dim.get("prior_hidden", (1000, 200))),
    )


def build_dim_model(run: Run, axis_name, *, use_global: bool, use_local: bool, use_prior: bool):
    """``DIMNetwork``: the configured encoder, the ``Y`` projector, critics, discriminator."""
    from ssljax.models.critics import DIMNetwork
    from ssljax.models.network import build_encoder_from_config, build_projector_from_config

    return DIMNetwork(
        encoder=build_encoder_from_config(run, axis_name),
        projector=build_projector_from_config(run, axis_name),
        use_global=use_global,
        use_local=use_local,
        use_prior=use_prior,
        **dim_model_settings(run),
    )


def dim_views(rng, images, run: Run, *, num_views: int):
    """``num_views`` views per image (two with ``cross_view``), augmented with
    ``run.augment``."""
    from ssljax.views.augment import make_views

    chex.assert_rank(images, 4)
    return make_views(rng, images, run.augment, num_views=num_views)


def local_map_shape(model, view_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape ``[1, H, W, C]`` of the local feature map ``model`` gives for float views of
    ``view_shape`` (traced only, nothing is computed)."""

    def local(v):
        variables = model.init(jax.random.PRNGKey(0), v, train=False)
        return model.apply(variables, v, train=False)["local_map"]

    return tuple(jax.eval_shape(local, jax.ShapeDtypeStruct(view_shape, jnp.float32)).shape)


# ---------------------------------------------------------------------------------------------
# Scores and estimators.


def estimate(estimator: str, scores, state, *, mine_momentum: float, smile_clip: float, axis_name):
    """``(objective, MI estimate, new MINE state)`` of one score matrix.

    The objective is what the critic and encoder maximise; it equals the estimate except for
    ``jsd``, which maximises the JS f-GAN objective (DIM's JSD loss) and reports NWJ through
    ``js_bound`` as a metric only, so an overflowing report never stops training.
    """
    chex.assert_rank(scores, 2)
    if estimator == "mine":
        value, state = mi.mine_bound(scores, state, momentum=mine_momentum, axis_name=axis_name)
        return value, value, state
    if estimator == "jsd":
        objective = mi.js_fgan_objective(scores, axis_name=axis_name)
        return objective, jax.lax.stop_gradient(mi.js_bound(scores, axis_name=axis_name)), state
    fns = {
        "dv": mi.dv_bound,
        "infonce": mi.infonce_bound,
        "nwj": mi.nwj_bound,
        "smile": lambda s, axis_name: mi.smile_bound(s, smile_clip, axis_name=axis_name),
    }
    value = fns[estimator](scores, axis_name=axis_name)
    return value, value, state


def global_scores(query, key, axis_name):
    """``[n, N]``: this device's ``g(Y)`` against every image's ``h(M)``."""
    chex.assert_rank([query, key], 2)
    keys, _ = gather_batch(key.astype(jnp.float32), axis_name)
    return query.astype(jnp.float32) @ keys.T


def local_scores(query, key, axis_name):
    """``[L, n, N]``: per location, this device's ``g(Y)`` against every image's ``h(M_l)``."""
    chex.assert_rank([query, key], [2, 3])
    keys, _ = gather_batch(key.astype(jnp.float32), axis_name)  # [N, L, E]
    return jnp.einsum("ne,mle->lnm", query.astype(jnp.float32), keys)


def prior_matching_loss(params, y, rng, *, model):
    """Discriminator loss (``D`` trained, ``Y`` fixed) + encoder loss (``D`` fixed).

    Returns ``(loss, discriminator_loss, encoder_loss)``; both parts share one gradient step.
    """
    z = jax.nn.sigmoid(y.astype(jnp.float32))
    prior = jax.random.uniform(rng, z.shape, jnp.float32)

    def disc(p, inputs):
        return model.apply({"params": p}, inputs, method="discriminate")

    real = disc(params, prior)
    fake = disc(params, jax.lax.stop_gradient(z))
    d_loss = jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
    g_loss = jnp.mean(jax.nn.softplus(-disc(jax.lax.stop_gradient(params), z)))
    return d_loss + g_loss, d_loss, g_loss


def per_matrix(estimator: str, scores, state, **kwargs):
    """``estimate`` vmapped over a leading axis of score matrices (and MINE states)."""
    chex.assert_rank(scores, 3)
    return jax.vmap(lambda sc, st: estimate(estimator, sc, st, **kwargs))(scores, state)


# ---------------------------------------------------------------------------------------------
# The objective.


@register
@dataclasses.dataclass(frozen=True)
class DIM(Objective):
    """Deep InfoMax: ``-(alpha I(M; Y) + beta mean_l I(M_l; Y)) + gamma * prior term``.

    Attributes:
      estimator: the MI bound, one of ``ESTIMATORS`` (module docstring).
      global_weight: alpha, weight of the global MI term (0: off).
      local_weight: beta, weight of the local MI term (0: off).
      prior_weight: gamma, weight of the uniform-prior matching (0: off).
      mine_momentum: momentum of MINE's moving averages (estimator ``mine``).
      smile_clip: tau of the SMILE bound (estimator ``smile``).
      cross_view: score ``Y`` of one augmented view against the feature maps of another.
    """

    name: ClassVar[str] = "dim"
    description: ClassVar[str] = (
        "Deep InfoMax: global/local MI with JSD, DV/MINE or InfoNCE "
        "critics, optional prior matching (Hjelm et al. 2019)"
    )

    estimator: str = "jsd"
    global_weight: float = 0.0
    local_weight: float = 1.0
    prior_weight: float = 0.1
    mine_momentum: float = 0.9
    smile_clip: float = 5.0
    cross_view: bool = False

    def __post_init__(self):
        check_choice("estimator", self.estimator, ESTIMATORS)
        for key in ("global_weight", "local_weight", "prior_weight"):
            check_range(key, getattr(self, key), low=0.0)
        if float(self.global_weight) == 0.0 and float(self.local_weight) == 0.0:
            raise ValueError(
                "objective.global_weight=0 and objective.local_weight=0 leave DIM "
                "no MI term; valid: global_weight > 0 or local_weight > 0"
            )
        check_range("mine_momentum", self.mine_momentum, low=0.0, high=1.0, high_open=True)
        check_range("smile_clip", self.smile_clip, low=0.0, low_open=True)
        check_choice("cross_view", self.cross_view, (False, True))

    @property
    def num_views(self) -> int:
        """Score matrices per step: 2 with ``cross_view`` (view 1 -> 2 and 2 -> 1), else 1."""
        return 2 if self.cross_view else 1

    def _estimator_kwargs(self, axis_name) -> dict:
        return dict(
            mine_momentum=float(self.mine_momentum),
            smile_clip=float(self.smile_clip),
            axis_name=axis_name,
        )

    def _local_map_shape(self, run: Run) -> tuple[int, ...]:
        """``[1, H, W, C]`` of the local feature map for the training views (traced only)."""
        images = jax.ShapeDtypeStruct((1,) + tuple(run.facts.image_shape), jnp.uint8)
        view = jax.eval_shape(
            lambda r, im: self.make_views(r, im, run), jax.random.PRNGKey(0), images
        )[0]
        return local_map_shape(self.build_model(run, None), view.shape)

    def check(self, run: Run) -> None:
        if run.model.get("projector") is None:
            raise ValueError("objective 'dim' needs config.model.projector (the head giving Y)")
        if run.model.get("patches") is not None:
            raise ValueError("objective 'dim' takes whole images; remove config.model.patches")
        layer = dim_model_settings(run)["local_layer"]
        try:
            self._local_map_shape(run)
        except ValueError as err:
            if layer in str(err):
                raise ValueError(
                    f"model.dim.local_layer={layer!r} is not a feature map the encoder sows: {err}"
                ) from None
            raise

    def build_model(self, run: Run, axis_name):
        return build_dim_model(
            run,
            axis_name,
            use_global=float(self.global_weight) > 0,
            use_local=float(self.local_weight) > 0,
            use_prior=float(self.prior_weight) > 0,
        )

    def init_state(self, params, model_state, run: Run):
        """MINE's moving averages: one per score matrix of a step (per direction for the
        global term, per direction and location for the local term); None without MINE."""
        del params, model_state
        if self.estimator != "mine":
            return None
        state = MineAverages()
        if float(self.global_weight) > 0:
            state = state.replace(global_=mi.mine_init_state((self.num_views,)))
        if float(self.local_weight) > 0:
            _, height, width, _ = self._local_map_shape(run)
            state = state.replace(local=mi.mine_init_state((self.num_views * height * width,)))
        return state

    def make_views(self, rng, images, run: Run):
        return dim_views(rng, images, run, num_views=self.num_views)

    def loss(self, params, model_state, views, rng, ctx: LossContext):
        """The DIM loss and MI metrics.

        With ``cross_view`` both views go through the network in one call (BatchNorm over
        both) and ``Y`` of each view is scored against the feature maps of the other view;
        the terms of the two directions are averaged.
        """
        directions = len(views)
        model = ctx.model
        out, new_state = model.apply(
            {"params": params, **model_state},
            jnp.concatenate(views, axis=0),
            train=True,
            mutable=list(model_state) + ["intermediates"],
        )
        new_state = {k: v for k, v in new_state.items() if k != "intermediates"}
        split = {k: jnp.split(v, directions, axis=0) for k, v in out.items()}
        other = [(d + 1) % directions for d in range(directions)]  # whose keys each view scores
        mine = ctx.state if self.estimator == "mine" else MineAverages()
        kwargs = self._estimator_kwargs(ctx.axis_name)
        alpha, beta, gamma = (
            float(self.global_weight),
            float(self.local_weight),
            float(self.prior_weight),
        )
        loss = jnp.zeros((), jnp.float32)
        metrics, new_mine = {}, {}
        if alpha > 0:
            scores = jnp.stack(
                [
                    global_scores(
                        split["global_query"][d], split["global_key"][other[d]], ctx.axis_name
                    )
                    for d in range(directions)
                ]
            )  # [D, n, N]
            objectives, values, new_mine["global_"] = per_matrix(
                self.estimator, scores, mine.global_, **kwargs
            )
            loss = loss - alpha * jnp.mean(objectives)
            metrics["mi_global"] = jnp.mean(values)
        if beta > 0:
            scores = jnp.concatenate(
                [
                    local_scores(
                        split["local_query"][d], split["local_key"][other[d]], ctx.axis_name
                    )
                    for d in range(directions)
                ]
            )  # [D * L, n, N]
            objectives, values, new_mine["local"] = per_matrix(
                self.estimator, scores, mine.local, **kwargs
            )
            loss = loss - beta * jnp.mean(objectives)
            metrics["mi_local"] = jnp.mean(values)
        if gamma > 0:
            prior, d_loss, g_loss = prior_matching_loss(params, out["projection"], rng, model=model)
            loss = loss + gamma * prior
            metrics.update(prior_discriminator_loss=d_loss, prior_encoder_loss=g_loss)
        metrics["loss"] = loss
        outputs = DIMOutputs(
            embedding=split["projection"][0],
            mine=MineAverages(**new_mine) if self.estimator == "mine" else None,
        )
        return loss, LossAux(metrics, new_state, outputs)

    def update_state(self, state, outputs: DIMOutputs, ctx: UpdateContext):
        """Keeps the MINE averages the loss computed on this step's scores."""
        del ctx
        return outputs.mine if outputs.mine is not None else state
