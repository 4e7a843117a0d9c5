"""Deep InfoMax (Hjelm et al. 2019) as a registry record: global and local MI maximisation.

The encoder maps an image to a feature map ``M`` (an intermediate layer it sows, e.g.
``block3``) and, through its remaining layers and the projector, to the global vector ``Y``.
DIM maximises, with a critic trained jointly,

    alpha * I(M; Y)  +  beta * mean over locations l of I(M_l; Y)  (+ prior matching)

(the seed's global and local objectives). Critics score by dot products of learned
embeddings (``ssljax.models.critics.DIMNetwork``): the global critic compares ``Y`` with the
flattened map ``M`` of every image, the local critic ``Y`` with the feature vector of every
location of every image, so each location gives a ``[B, B]`` score matrix with the joint pairs
on the diagonal and the other images' features as negatives. Any bound of
``ssljax.objectives.mutual_information`` then applies:

  ``jsd``      DIM's JSD estimator: the loss is the JS f-GAN objective, the reported MI the
               NWJ value of ``js_bound``; the paper's default, stable.
  ``dv``       Donsker-Varadhan (MINE's bound).
  ``mine``     DV with MINE's moving-average gradient; the averages live in ``TrainState.extra``.
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

Config keys (``config.objective``): ``estimator``, ``global_weight`` (alpha),
``local_weight`` (beta), ``prior_weight`` (gamma), ``mine_momentum``, ``smile_clip``,
``cross_view``.
``config.model``: ``encoder`` + ``encoder_kwargs``, ``projector`` (the ``Y`` head) and
``dim`` (``local_layer``, ``critic_hidden``, ``critic_embed``, ``critic_layers``,
``prior_hidden``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ssljax.objectives import mutual_information as mi
from ssljax.objectives.contrastive import gather_batch
from ssljax.objectives.registry import Objective, register

ESTIMATORS = ("jsd", "dv", "mine", "infonce", "nwj", "smile")
DEFAULTS = dict(estimator="jsd", global_weight=0.0, local_weight=1.0, prior_weight=0.0,
                mine_momentum=0.9, smile_clip=5.0, cross_view=False)


def _setting(config, key):
    return config.objective.get(key, DEFAULTS[key])


def _dim_model_settings(config) -> dict:
    dim = config.model.get("dim", {})
    return dict(
        local_layer=str(dim.get("local_layer", "block3")),
        critic_hidden=int(dim.get("critic_hidden", 512)),
        critic_embed=int(dim.get("critic_embed", 512)),
        critic_layers=int(dim.get("critic_layers", 1)),
        prior_hidden=tuple(int(w) for w in dim.get("prior_hidden", (1000, 200))),
    )


def build_dim_model(config, axis_name):
    """``DIMNetwork``: the configured encoder, the ``Y`` projector, critics, discriminator."""
    from ssljax.models.critics import DIMNetwork
    from ssljax.models.network import build_encoder_from_config, build_projector_from_config

    return DIMNetwork(
        encoder=build_encoder_from_config(config, axis_name),
        projector=build_projector_from_config(config, axis_name),
        use_global=float(_setting(config, "global_weight")) > 0,
        use_local=float(_setting(config, "local_weight")) > 0,
        use_prior=float(_setting(config, "prior_weight")) > 0,
        **_dim_model_settings(config),
    )


def _directions(config) -> int:
    """Score matrices per step: 2 with ``cross_view`` (view 1 -> 2 and 2 -> 1), else 1."""
    return 2 if bool(_setting(config, "cross_view")) else 1


def dim_views(rng, images, config):
    """One view per image (two with ``cross_view``), augmented with ``config.augment``."""
    from ssljax.data.augment import make_views

    return make_views(rng, images, config.augment, num_views=_directions(config))


def estimate(estimator: str, scores, state, *, config, axis_name):
    """``(objective, MI estimate, new MINE state)`` of one score matrix.

    The objective is what the critic and encoder maximise; it equals the estimate except for
    ``jsd``, which maximises the JS f-GAN objective (DIM's JSD loss) and reports NWJ through
    ``js_bound`` as a metric only, so an overflowing report never stops training.
    """
    if estimator == "mine":
        value, state = mi.mine_bound(scores, state,
                                     momentum=float(_setting(config, "mine_momentum")),
                                     axis_name=axis_name)
        return value, value, state
    if estimator == "jsd":
        objective = mi.js_fgan_objective(scores, axis_name=axis_name)
        return objective, jax.lax.stop_gradient(mi.js_bound(scores, axis_name=axis_name)), state
    fns = {
        "dv": mi.dv_bound,
        "infonce": mi.infonce_bound,
        "nwj": mi.nwj_bound,
        "smile": lambda s, axis_name: mi.smile_bound(
            s, float(_setting(config, "smile_clip")), axis_name=axis_name),
    }
    value = fns[estimator](scores, axis_name=axis_name)
    return value, value, state


def global_scores(query, key, axis_name):
    """``[n, N]``: this device's ``g(Y)`` against every image's ``h(M)``."""
    keys, _ = gather_batch(key.astype(jnp.float32), axis_name)
    return query.astype(jnp.float32) @ keys.T


def local_scores(query, key, axis_name):
    """``[L, n, N]``: per location, this device's ``g(Y)`` against every image's ``h(M_l)``."""
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


def _per_matrix(estimator, scores, state, *, config, axis_name):
    """``estimate`` vmapped over a leading axis of score matrices (and MINE states)."""
    return jax.vmap(
        lambda sc, st: estimate(estimator, sc, st, config=config, axis_name=axis_name)
    )(scores, state)


def dim_objective_loss(params, model_state, views, rng, *, model, config, axis_name, extra,
                       **_):
    """``-(alpha I(M; Y) + beta mean_l I(M_l; Y)) + gamma * prior term`` and MI metrics.

    With ``cross_view`` both views go through the network in one call (BatchNorm over both)
    and ``Y`` of each view is scored against the feature maps of the other view; the terms
    of the two directions are averaged.
    """
    directions = len(views)
    out, new_state = model.apply(
        {"params": params, **model_state}, jnp.concatenate(views, axis=0), train=True,
        mutable=list(model_state) + ["intermediates"],
    )
    new_state = {k: v for k, v in new_state.items() if k != "intermediates"}
    split = {k: jnp.split(v, directions, axis=0) for k, v in out.items()}
    other = [(d + 1) % directions for d in range(directions)]  # whose keys each view scores
    estimator = _setting(config, "estimator")
    alpha = float(_setting(config, "global_weight"))
    beta = float(_setting(config, "local_weight"))
    gamma = float(_setting(config, "prior_weight"))
    extra = extra or {}
    loss = jnp.zeros((), jnp.float32)
    metrics, new_mine = {}, {}
    if alpha > 0:
        scores = jnp.stack([global_scores(split["global_query"][d],
                                          split["global_key"][other[d]], axis_name)
                            for d in range(directions)])  # [D, n, N]
        objectives, values, new_mine["global"] = _per_matrix(
            estimator, scores, extra.get("global"), config=config, axis_name=axis_name)
        loss = loss - alpha * jnp.mean(objectives)
        metrics["mi_global"] = jnp.mean(values)
    if beta > 0:
        scores = jnp.concatenate([local_scores(split["local_query"][d],
                                               split["local_key"][other[d]], axis_name)
                                  for d in range(directions)])  # [D * L, n, N]
        objectives, values, new_mine["local"] = _per_matrix(
            estimator, scores, extra.get("local"), config=config, axis_name=axis_name)
        loss = loss - beta * jnp.mean(objectives)
        metrics["mi_local"] = jnp.mean(values)
    if gamma > 0:
        prior, d_loss, g_loss = prior_matching_loss(params, out["projection"], rng, model=model)
        loss = loss + gamma * prior
        metrics.update(prior_discriminator_loss=d_loss, prior_encoder_loss=g_loss)
    metrics["loss"] = loss
    outputs = {"embedding": split["projection"][0]}
    if estimator == "mine":
        outputs["mine"] = new_mine
    return loss, (metrics, new_state, outputs)


def local_map_shape(config) -> tuple[int, ...]:
    """Shape ``[1, H, W, C]`` of the local feature map for the training views (traced only)."""
    from ssljax.data.datasets import get_dataset_spec

    spec = get_dataset_spec(config.dataset.name)
    model = build_dim_model(config, None)
    images = jax.ShapeDtypeStruct((1,) + tuple(spec.train_image_shape), jnp.uint8)
    view = jax.eval_shape(lambda r, im: dim_views(r, im, config), jax.random.PRNGKey(0),
                          images)[0]

    def local(v):
        variables = model.init(jax.random.PRNGKey(0), v, train=False)
        return model.apply(variables, v, train=False)["local_map"]

    return tuple(jax.eval_shape(local, view).shape)


def init_dim_extra(params, model_state, config):
    """MINE's moving averages: one per score matrix of a step (per direction for the global
    term, per direction and location for the local term)."""
    del params, model_state
    if _setting(config, "estimator") != "mine":
        return {}
    extra, directions = {}, _directions(config)
    if float(_setting(config, "global_weight")) > 0:
        extra["global"] = mi.mine_init_state((directions,))
    if float(_setting(config, "local_weight")) > 0:
        _, height, width, _ = local_map_shape(config)
        extra["local"] = mi.mine_init_state((directions * height * width,))
    return extra


def update_dim_extra(extra, outputs, **_):
    """Keeps the MINE averages the loss computed on this step's scores."""
    return outputs["mine"] if "mine" in outputs else extra


def check_dim_config(config) -> None:
    """One-line ValueErrors for estimator names, weights and the local layer."""
    estimator = _setting(config, "estimator")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown objective.estimator {estimator!r}; choose one of "
                         f"{list(ESTIMATORS)}")
    weights = {k: float(_setting(config, k))
               for k in ("global_weight", "local_weight", "prior_weight")}
    negative = {k: v for k, v in weights.items() if v < 0}
    if negative:
        raise ValueError(f"DIM weights must be >= 0, got {negative}")
    if weights["global_weight"] == 0 and weights["local_weight"] == 0:
        raise ValueError("objective.global_weight and objective.local_weight are both 0; "
                         "DIM needs at least one MI term")
    momentum = float(_setting(config, "mine_momentum"))
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"objective.mine_momentum={momentum} must lie in [0, 1)")
    if config.model.get("projector") is None:
        raise ValueError("objective 'dim' needs config.model.projector (the head giving Y)")
    if config.model.get("patches") is not None:
        raise ValueError("objective 'dim' takes whole images; remove config.model.patches")
    layer = _dim_model_settings(config)["local_layer"]
    try:
        local_map_shape(config)
    except ValueError as err:
        if layer in str(err):
            raise ValueError(f"model.dim.local_layer={layer!r} is not a feature map the "
                             f"encoder sows: {err}") from None
        raise


DIM = register(
    Objective(
        name="dim",
        build_model=build_dim_model,
        make_views=dim_views,
        loss=dim_objective_loss,
        init_extra=init_dim_extra,
        update_extra=update_dim_extra,
        check_config=check_dim_config,
        description="Deep InfoMax: global/local MI with JSD, DV/MINE or InfoNCE critics, "
                    "optional prior matching (Hjelm et al. 2019)",
    )
)
