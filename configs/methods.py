"""Method settings shared by every dataset's config: ``<method>(c, ...)`` edits a config in place.

Each function sets ``objective.name`` and the keys the method's registry record reads
(``ssljax/objectives/methods.py``), with the authors' defaults unless an argument overrides
them; the dataset files (``configs/<method>_<dataset>.py``) state only what differs.
"""

import ml_collections


def mlp(hidden_dims, output_dim, *, use_bn=True, bn_on_output=False):
    """An ``MLPHead`` description (``model.projector`` / ``model.predictor``)."""
    return ml_collections.ConfigDict(
        dict(hidden_dims=tuple(hidden_dims), output_dim=output_dim, use_bn=use_bn,
             bn_on_output=bn_on_output)
    )


def moco(c, *, temperature=0.2, queue_size=65536, ema_momentum=0.999):
    """MoCo v2 (Chen et al. 2020b): tau 0.2, queue 65536, key-encoder momentum 0.999."""
    c.objective.name = "moco"
    c.objective.temperature = temperature
    c.objective.queue_size = queue_size
    c.objective.ema_momentum = ema_momentum
    c.objective.ema_schedule = "constant"
    return c


def byol(c, *, ema_momentum=0.996, hidden=4096, output_dim=256):
    """BYOL (Grill et al. 2020): target momentum 0.996 -> 1 (cosine), 4096-256 MLPs."""
    c.objective.name = "byol"
    c.objective.ema_momentum = ema_momentum
    c.objective.ema_schedule = "cosine"
    c.model.projector = mlp((hidden,), output_dim)
    c.model.predictor = mlp((hidden,), output_dim)
    return c


def simsiam(c, *, dim=2048, predictor_hidden=512):
    """SimSiam (Chen & He 2021): 3-layer projector with BN on its output, 512-d bottleneck."""
    c.objective.name = "simsiam"
    c.model.projector = mlp((dim, dim), dim, bn_on_output=True)
    c.model.predictor = mlp((predictor_hidden,), dim)
    return c


def instance_discrimination(c, *, memory_size, temperature=0.07, memory_momentum=0.5,
                            num_negatives=4096):
    """Wu et al. 2018: 128-d features, tau 0.07, bank momentum 0.5, 4096 negatives."""
    c.objective.name = "instance_discrimination"
    c.objective.temperature = temperature
    c.objective.memory_size = memory_size
    c.objective.memory_momentum = memory_momentum
    c.objective.num_negatives = num_negatives
    return c


def binary_contrastive(c, *, temperature=0.2, bias=0.0):
    """'Same image or not' (seed 004): logistic loss on (cos - bias) / tau of view pairs."""
    c.objective.name = "binary_contrastive"
    c.objective.temperature = temperature
    c.objective.bias = bias
    return c


def align_maxent(c, *, entropy_weight=1.0, output_dim=16):
    """AlignMaxEnt (seed 003): g = sigmoid(projection) in (0, 1)^d, alignment - entropy."""
    c.objective.name = "align_maxent"
    c.objective.entropy_weight = entropy_weight
    c.model.projector.output_dim = output_dim
    return c


def barlow_twins(c, *, lambd=0.0051, dim=8192):
    """Barlow Twins (Zbontar et al. 2021): lambda 0.0051, 3-layer 8192-d projector."""
    c.objective.name = "barlow_twins"
    c.objective.lambd = lambd
    c.model.projector = mlp((dim, dim), dim)
    return c


def vicreg(c, *, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, dim=8192):
    """VICReg (Bardes et al. 2022): coefficients 25 / 25 / 1, 3-layer 8192-d projector."""
    c.objective.name = "vicreg"
    c.objective.sim_coeff = sim_coeff
    c.objective.std_coeff = std_coeff
    c.objective.cov_coeff = cov_coeff
    c.model.projector = mlp((dim, dim), dim)
    return c


def cpc(c, *, prediction_steps, widths, strides, patch_size, patch_stride, context_width,
        context_blocks, patch_flip_prob, patch_color_drop_prob, learning_rate, weight_decay,
        warmup_steps, directions=4):
    """CPC v2 (Henaff et al. 2020): LayerNorm patch encoder, masked-convolution context
    network over the patch grid, one linear critic per offset, all four directions, Adam."""
    c.objective = ml_collections.ConfigDict()
    c.objective.name = "cpc"
    c.objective.prediction_steps = prediction_steps
    c.objective.directions = directions
    c.objective.patch_flip_prob = patch_flip_prob
    c.objective.patch_color_drop_prob = patch_color_drop_prob
    c.model.encoder = "convnet"
    c.model.encoder_kwargs.widths = tuple(widths)
    c.model.encoder_kwargs.strides = tuple(strides)
    c.model.encoder_kwargs.norm = "layer"
    # Dozens of patches per image already make small convolutions: one call is fastest.
    c.model.conv_batch_chunk = 0
    c.model.patches = ml_collections.ConfigDict(dict(size=patch_size, stride=patch_stride))
    c.model.context = ml_collections.ConfigDict(
        dict(width=context_width, num_blocks=context_blocks, kernel_size=(2, 3)))
    del c.model["projector"]
    c.optimizer.name = "adamw"
    c.optimizer.base_learning_rate = learning_rate
    c.optimizer.lr_scaling = "none"
    c.optimizer.weight_decay = weight_decay
    c.optimizer.warmup_steps = warmup_steps
    return c
