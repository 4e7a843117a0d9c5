"""Critics ``f(x, y)`` for mutual-information bounds, and the Deep InfoMax network.

A critic maps two batches ``x [Kx, dx]``, ``y [Ky, dy]`` to the score matrix
``scores [Kx, Ky]``, ``scores[i, j] = f(x_i, y_j)``, which every bound in
``ssljax.objectives.mutual_information`` reads (joint pairs on the diagonal when ``Kx = Ky``).
The three families are those compared by Poole et al. 2019 and Tschannen et al. 2020:

* ``SeparableCritic``: ``g(x)^T h(y)`` with two MLPs; ``Kx + Ky`` network evaluations.
* ``BilinearCritic``: ``x^T W y``.
* ``ConcatCritic``: one MLP on the concatenation ``[x_i; y_j]``, evaluated on all ``Kx * Ky``
  pairs. Its first layer is computed as ``W_x x_i + W_y y_j`` (the same function and the same
  parameters as a Dense layer on the concatenation, ``K`` times fewer FLOPs in that layer).

``MLP`` follows Poole et al.'s reference code: ``layers`` hidden Dense + activation layers of
``hidden_dim`` units, then a linear output layer.

Initialisation (``init_scheme``): ``'lecun'`` is Flax's default (LeCun-normal kernels, zero
biases); ``'torch'`` is PyTorch's ``nn.Linear`` default, which Song & Ermon's reference code for
the cubic benchmark gets: kernels and biases uniform in ``+-1/sqrt(fan_in)`` (kernel standard
deviation ``1/sqrt(3 fan_in)``). The scale matters for bounds with ``exp(f)`` terms: on
``y^3`` inputs a LeCun-initialised separable critic starts with scores near 30, whose
exponentials overflow in the first step (``docs/mutual_information.md``).

``DIMNetwork`` composes an encoder with the heads and critics of Deep InfoMax (Hjelm et al.
2019); the objective lives in ``ssljax.objectives.dim``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = Any

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": nn.relu,
    "elu": nn.elu,
    "tanh": jnp.tanh,
    "leaky_relu": nn.leaky_relu,
}


INIT_SCHEMES = ("lecun", "torch")


def dense_initializers(scheme: str, fan_in: int) -> dict[str, Callable]:
    """``{'kernel_init', 'bias_init'}`` of a Dense layer with ``fan_in`` inputs under ``scheme``."""
    if scheme == "lecun":
        return {
            "kernel_init": nn.initializers.lecun_normal(),
            "bias_init": nn.initializers.zeros_init(),
        }
    if scheme == "torch":
        bound = 1.0 / float(fan_in) ** 0.5

        def bias_init(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        return {
            "kernel_init": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
            "bias_init": bias_init,
        }
    raise ValueError(f"unknown init_scheme {scheme!r}; choose one of {list(INIT_SCHEMES)}")


def activation_fn(name: str) -> Callable[[Array], Array]:
    """The activation called ``name``; unknown names list the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """``layers`` x (Dense(hidden_dim) -> activation), then Dense(output_dim) (no activation).

    Acts on the last axis, so ``[..., d_in] -> [..., output_dim]`` (a 1x1 convolution stack
    on feature maps).
    """

    hidden_dim: int = 256
    output_dim: int = 1
    layers: int = 2
    activation: str = "relu"
    init_scheme: str = "lecun"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        act = activation_fn(self.activation)
        for i in range(self.layers):
            inits = dense_initializers(self.init_scheme, x.shape[-1])
            x = act(nn.Dense(self.hidden_dim, name=f"hidden{i + 1}", **inits)(x))
        inits = dense_initializers(self.init_scheme, x.shape[-1])
        return nn.Dense(self.output_dim, name="output", **inits)(x)


class SeparableCritic(nn.Module):
    """``f(x, y) = g(x)^T h(y)`` with MLPs ``g``, ``h`` of ``layers`` hidden layers into
    ``embed_dim`` dimensions (Poole et al.: 2 x 256 hidden, 32-d embedding)."""

    hidden_dim: int = 256
    embed_dim: int = 32
    layers: int = 2
    activation: str = "relu"
    init_scheme: str = "lecun"

    @nn.compact
    def __call__(self, x: Array, y: Array) -> Array:
        _check_pairs(x, y)
        mlp = lambda name: MLP(
            self.hidden_dim,
            self.embed_dim,
            self.layers,  # noqa: E731
            self.activation,
            self.init_scheme,
            name=name,
        )
        g = mlp("g")(x)
        h = mlp("h")(y)
        return g @ h.T


class BilinearCritic(nn.Module):
    """``f(x, y) = x^T W y`` with ``W`` of shape ``[dx, dy]`` (CPC's critic on fixed features)."""

    @nn.compact
    def __call__(self, x: Array, y: Array) -> Array:
        _check_pairs(x, y)
        w = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], y.shape[-1]))
        return x @ w @ y.T


class ConcatCritic(nn.Module):
    """``f(x, y) = MLP([x; y])`` on every pair ``(x_i, y_j)``: ``[Kx, Ky]`` scores.

    The first layer's parameters are those of a Dense layer on the concatenation
    (``hidden1_kernel [dx + dy, hidden_dim]``, ``hidden1_bias``, same initialisers), applied
    as ``x W[:dx] + y W[dx:] + b`` broadcast over pairs; the other layers run on the
    ``Kx * Ky`` pair features.
    """

    hidden_dim: int = 256
    layers: int = 2
    activation: str = "relu"
    init_scheme: str = "lecun"

    @nn.compact
    def __call__(self, x: Array, y: Array) -> Array:
        _check_pairs(x, y)
        if self.layers < 1:
            raise ValueError(f"ConcatCritic needs layers >= 1, got {self.layers}")
        act = activation_fn(self.activation)
        dx, dy = x.shape[-1], y.shape[-1]
        first = dense_initializers(self.init_scheme, dx + dy)
        kernel = self.param("hidden1_kernel", first["kernel_init"], (dx + dy, self.hidden_dim))
        bias = self.param("hidden1_bias", first["bias_init"], (self.hidden_dim,))
        h = act((x @ kernel[:dx])[:, None, :] + (y @ kernel[dx:])[None, :, :] + bias)
        inits = dense_initializers(self.init_scheme, self.hidden_dim)
        for i in range(1, self.layers):
            h = act(nn.Dense(self.hidden_dim, name=f"hidden{i + 1}", **inits)(h))
        return nn.Dense(1, name="output", **inits)(h)[..., 0]


CRITICS = {"separable": SeparableCritic, "bilinear": BilinearCritic, "concat": ConcatCritic}


def build_critic(name: str, **kwargs) -> nn.Module:
    """The critic called ``name`` (``separable``, ``bilinear``, ``concat``) with its settings."""
    if name not in CRITICS:
        raise ValueError(f"unknown critic {name!r}; choose one of {sorted(CRITICS)}")
    if name == "bilinear":
        return BilinearCritic()
    if name == "concat":
        kwargs.pop("embed_dim", None)
    return CRITICS[name](**kwargs)


def _check_pairs(x: Array, y: Array) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"critics take x [Kx, dx] and y [Ky, dy], got {x.shape} and {y.shape}")


# ---------------------------------------------------------------------------------------------
# Deep InfoMax.


class DIMNetwork(nn.Module):
    """Encoder + Deep InfoMax heads (Hjelm et al. 2019): global vector, critics, discriminator.

    ``__call__(x, train)`` returns

    * ``features``: the encoder output (what the linear probe reads);
    * ``projection``: the global representation ``Y = projector(features)`` (DIM's 64-d ``Y``);
    * ``local_map``: the encoder's sown feature map ``local_layer`` ``[B, H, W, C]`` (DIM's
      ``M``, an intermediate layer of the same encoder);
    * for the global objective ``global_query = g(Y)`` and ``global_key = h(flatten(M))``;
    * for the local objective ``local_query = g_l(Y)`` and ``local_key = h_l(M)``
      ``[B, H * W, E]`` (1x1-convolution MLP at every location).

    Scores are dot products of queries and keys (DIM's "encoder-and-dot-product" critics), so
    every estimator sees the whole ``[B, B]`` score matrix (the paper's global critic
    concatenates ``Y`` and ``M`` into an MLP; a separable critic is ours, as for local DIM).
    ``discriminate(z)`` is the prior-matching discriminator (DIM: 1000-200-1) on
    ``sigmoid(Y)`` or prior samples.

    Training applies must make ``'intermediates'`` mutable so the encoder can sow the local
    map (``ssljax.objectives.dim`` does); in evaluation mode without it the map is
    recomputed from the encoder's variables.

    Attributes:
      encoder: the image encoder; sows ``local_layer`` into ``'intermediates'``.
      projector: MLP head from ``features`` to ``Y``.
      local_layer: sown name of the local feature map (e.g. ``'block3'``).
      critic_hidden, critic_embed, critic_layers: width, output width and hidden layers of
        the query/key MLPs (DIM: 512 units).
      use_global, use_local, use_prior: which heads exist.
      prior_hidden: hidden widths of the discriminator.
    """

    encoder: nn.Module
    projector: nn.Module
    local_layer: str = "block3"
    critic_hidden: int = 512
    critic_embed: int = 512
    critic_layers: int = 1
    use_global: bool = False
    use_local: bool = True
    use_prior: bool = False
    prior_hidden: Sequence[int] = (1000, 200)

    def setup(self):
        mlp = lambda name: MLP(
            self.critic_hidden,
            self.critic_embed,
            self.critic_layers,  # noqa: E731
            name=name,
        )
        if self.use_global:
            self.global_query_net = mlp("global_query")
            self.global_key_net = mlp("global_key")
        if self.use_local:
            self.local_query_net = mlp("local_query")
            self.local_key_net = mlp("local_key")
        if self.use_prior:
            self.discriminator = [
                nn.Dense(w, name=f"prior_hidden{i + 1}") for i, w in enumerate(self.prior_hidden)
            ]
            self.discriminator_out = nn.Dense(1, name="prior_output")

    def local_map(self, x: Array, *, train: bool) -> Array:
        """The sown ``local_layer`` of the encoder call just made on ``x``."""
        sown = self.encoder.get_variable("intermediates", self.local_layer)
        if sown is not None:
            return sown[-1]
        if train:
            raise ValueError(
                "DIMNetwork in training mode needs mutable=['intermediates', ...] "
                "so the encoder can sow its local feature map"
            )
        from ssljax.models import _sown_outputs

        outputs = _sown_outputs(self.encoder.clone(parent=None), self.encoder.variables, x)
        if self.local_layer not in outputs:
            raise ValueError(
                f"unknown local_layer {self.local_layer!r}; the encoder sows {list(outputs)}"
            )
        return outputs[self.local_layer]

    def __call__(self, x: Array, *, train: bool) -> dict[str, Array]:
        features = self.encoder(x, train=train)
        y = self.projector(features, train=train)
        m = self.local_map(x, train=train)
        if m.ndim != 4:
            raise ValueError(f"local_layer {self.local_layer!r} is not a feature map: {m.shape}")
        out = {"features": features, "projection": y, "local_map": m}
        if self.use_global:
            out["global_query"] = self.global_query_net(y)
            out["global_key"] = self.global_key_net(m.reshape(m.shape[0], -1))
        if self.use_local:
            out["local_query"] = self.local_query_net(y)
            out["local_key"] = self.local_key_net(m).reshape(m.shape[0], -1, self.critic_embed)
        if self.use_prior and self.is_initializing():
            self.discriminate(y)
        return out

    def discriminate(self, z: Array) -> Array:
        """Prior-matching discriminator logits ``[B]`` for ``z [B, d]`` (ReLU MLP)."""
        for layer in self.discriminator:
            z = nn.relu(layer(z))
        return self.discriminator_out(z)[:, 0]
