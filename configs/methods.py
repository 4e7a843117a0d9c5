"""Method settings shared by every dataset's config: ``<method>(c, ...)`` edits a config in place.

Each function sets ``objective.name`` and the keys the method's registry record reads
(``ssljax/objectives/methods.py``), with the authors' defaults unless an argument overrides
them; the dataset files (``configs/<method>_<dataset>.py``) state only what differs.
"""

import ml_collections


def adamw(c, learning_rate, *, weight_decay, warmup_steps):
    """AdamW at ``learning_rate`` without batch-size scaling (the non-contrastive methods)."""
    c.optimizer.name = "adamw"
    c.optimizer.base_learning_rate = learning_rate
    c.optimizer.lr_scaling = "none"
    c.optimizer.weight_decay = weight_decay
    c.optimizer.warmup_steps = warmup_steps
    return c


def sgd(c, learning_rate, *, weight_decay, warmup_steps, momentum=0.9):
    """SGD with momentum at ``learning_rate`` without batch-size scaling (the pretext tasks)."""
    c.optimizer.name = "sgd"
    c.optimizer.base_learning_rate = learning_rate
    c.optimizer.lr_scaling = "none"
    c.optimizer.momentum = momentum
    c.optimizer.weight_decay = weight_decay
    c.optimizer.warmup_steps = warmup_steps
    return c


def mlp(hidden_dims, output_dim, *, use_bn=True, bn_on_output=False, output_bias=True):
    """An ``MLPHead`` description (``model.projector`` / ``model.predictor``)."""
    return ml_collections.ConfigDict(
        dict(hidden_dims=tuple(hidden_dims), output_dim=output_dim, use_bn=use_bn,
             bn_on_output=bn_on_output, output_bias=output_bias)
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
    """BYOL (Grill et al. 2020): target momentum 0.996 -> 1 (cosine), 4096-256 MLPs without an
    output bias, each view through its own forward pass (BatchNorm statistics per view), as
    in the reference code."""
    c.objective.name = "byol"
    c.objective.ema_momentum = ema_momentum
    c.objective.ema_schedule = "cosine"
    c.objective.view_batch_norm = "per_view"
    # The reference MLP: Linear -> BN -> ReLU -> Linear without a bias (its hidden bias is
    # cancelled by the BN, so MLPHead leaves it out).
    c.model.projector = mlp((hidden,), output_dim, output_bias=False)
    c.model.predictor = mlp((hidden,), output_dim, output_bias=False)
    return c


def simsiam(c, *, dim=2048, predictor_hidden=512):
    """SimSiam (Chen & He 2021): 3-layer projector with BN on its output, 512-d bottleneck."""
    c.objective.name = "simsiam"
    c.model.projector = mlp((dim, dim), dim, bn_on_output=True)
    c.model.predictor = mlp((predictor_hidden,), dim)
    return c


def instance_discrimination(c, *, memory_size, temperature=0.07, memory_momentum=0.5,
                            num_negatives=4096, proximal_weight=0.0, memory_init="random"):
    """Wu et al. 2018: 128-d features, tau 0.07, bank momentum 0.5, 4096 negatives, random
    initial rows; ``proximal_weight`` is their proximal regulariser's lambda (0: off);
    ``memory_init='first_visit'`` fills rows from the network as images are first seen."""
    c.objective.name = "instance_discrimination"
    c.objective.temperature = temperature
    c.objective.memory_size = memory_size
    c.objective.memory_momentum = memory_momentum
    c.objective.num_negatives = num_negatives
    c.objective.proximal_weight = float(proximal_weight)
    c.objective.memory_init = memory_init
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
    return adamw(c, learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps)


def classifier(hidden_dims=(), *, use_bn=True, crop_dim=0):
    """A pretext classifier description (``model.classifier``, ``PretextClassifier``)."""
    return ml_collections.ConfigDict(
        dict(hidden_dims=tuple(hidden_dims), use_bn=use_bn, crop_dim=crop_dim))


def _pretext(c, name, head):
    c.objective = ml_collections.ConfigDict()
    c.objective.name = name
    c.model.classifier = head
    del c.model["projector"]
    return c


def rotation(c, *, rotations=(0, 90, 180, 270), pad_crop=0, flip=False, hidden_dims=()):
    """RotNet (Gidaris et al. 2018): every image in all four rotations, 4-way softmax.

    ``pad_crop`` and ``flip`` are RotNet's CIFAR augmentation (zero-pad 4, random crop,
    horizontal flip) applied before rotating."""
    _pretext(c, "rotation", classifier(hidden_dims))
    c.objective.rotations = tuple(rotations)
    c.objective.pad_crop = pad_crop
    c.objective.flip = flip
    return c


def jigsaw(c, *, tile_size, gap, jitter, grid=3, num_permutations=1000, min_hamming_distance=1,
           permutation_seed=0, color_mode="gray", color_prob=0.3, noise_fraction=0.0,
           normalize=False, crop_dim=1024, hidden_dims=(4096,), image_stats_fraction=0.25):
    """Jigsaw puzzles (Noroozi & Favaro 2016): 3x3 tiles, 1000 max-Hamming permutations,
    per-tile shared encoder + fc6 (1024), concatenation, fc7 (4096), fc8; gaps, jitter and
    per-tile colour handling against shortcuts. The encoder's BatchNorm statistics come from
    a quarter of the batch's whole images (what the probe sees; ours)."""
    _pretext(c, "jigsaw", classifier(hidden_dims, crop_dim=crop_dim))
    c.objective.grid = grid
    c.objective.tile_size = tile_size
    c.objective.gap = gap
    c.objective.jitter = jitter
    c.objective.num_permutations = num_permutations
    c.objective.min_hamming_distance = min_hamming_distance
    c.objective.permutation_seed = permutation_seed
    c.objective.color_mode = color_mode
    c.objective.color_prob = color_prob
    c.objective.noise_fraction = noise_fraction
    c.objective.normalize = normalize
    c.objective.image_stats_fraction = image_stats_fraction
    return c


def relative_patch_location(c, *, patch_size, gap, jitter, color_mode="drop", color_prob=1.0,
                            noise_fraction=0.01, normalize=False, crop_dim=4096,
                            hidden_dims=(4096,), image_stats_fraction=0.25):
    """Context prediction (Doersch et al. 2015): centre patch + one of 8 neighbours, gap and
    jitter between them, colour dropping (2 of 3 channels -> noise of 1/100 the kept std)
    against chromatic aberration; per-patch fc6, concatenation, fc7, fc8 (8-way). The
    encoder's BatchNorm statistics come from a quarter of the batch's whole images (ours)."""
    _pretext(c, "relative_patch_location", classifier(hidden_dims, crop_dim=crop_dim))
    c.objective.patch_size = patch_size
    c.objective.gap = gap
    c.objective.jitter = jitter
    c.objective.color_mode = color_mode
    c.objective.color_prob = color_prob
    c.objective.noise_fraction = noise_fraction
    c.objective.normalize = normalize
    c.objective.image_stats_fraction = image_stats_fraction
    return c


def decoder(widths, *, feature_layer="block4", upsample=None, channel_fc=False, kernel_size=3,
            norm="batch"):
    """A ``ConvDecoder`` description (``model.decoder``) reading the encoder's ``feature_layer``;
    one nearest-upsampling stage (factor 2 unless ``upsample`` says otherwise) per width."""
    d = dict(widths=tuple(widths), feature_layer=feature_layer, channel_fc=channel_fc,
             kernel_size=kernel_size, norm=norm)
    if upsample is not None:
        d["upsample"] = tuple(upsample)
    return ml_collections.ConfigDict(d)


def _reconstruction(c, name, dec, *, learning_rate, weight_decay, warmup_steps):
    """Shared by the reconstruction tasks: decoder instead of projector, Adam(W), no lr scaling."""
    c.objective = ml_collections.ConfigDict()
    c.objective.name = name
    c.objective.augment = False
    c.model.decoder = dec
    del c.model["projector"]
    return adamw(c, learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps)


def inpainting(c, dec, *, mask="random_region", hole_size=0, num_blocks=4, block_size=0,
               region_fraction=0.25, region_scale=4.0, fill_value=0.5, lambda_rec=0.999,
               lambda_adv=0.001, disc_widths=(32, 64), disc_learning_rate=2e-4,
               learning_rate=2e-4, weight_decay=0.0, warmup_steps=0):
    """Context encoder (Pathak et al. 2016): masked L2 (+ adversarial) reconstruction of a
    hidden region; lambda_rec 0.999, lambda_adv 0.001 and Adam (beta1 0.5 for the
    discriminator) as in the paper. ``hole_size`` / ``block_size`` 0: a quarter of the area /
    a quarter of the side."""
    _reconstruction(c, "inpainting", dec, learning_rate=learning_rate,
                    weight_decay=weight_decay, warmup_steps=warmup_steps)
    c.objective.mask = mask
    c.objective.hole_size = hole_size
    c.objective.num_blocks = num_blocks
    c.objective.block_size = block_size
    c.objective.region_fraction = region_fraction
    c.objective.region_scale = region_scale
    c.objective.fill_value = fill_value
    c.objective.lambda_rec = lambda_rec
    c.objective.lambda_adv = lambda_adv
    c.objective.saturating = False
    c.objective.disc_widths = tuple(disc_widths)
    c.objective.disc_learning_rate = disc_learning_rate
    c.objective.disc_beta1 = 0.5
    return c


def denoising_autoencoder(c, dec, *, noise="gaussian", noise_stddev=0.3, drop_prob=0.25,
                          corrupted_weight=1.0, clean_weight=1.0, learning_rate=1e-3,
                          weight_decay=0.0, warmup_steps=0):
    """Denoising autoencoder (Vincent et al. 2008): Gaussian (or masking) noise, L2
    reconstruction of the clean image; corrupted/clean weights as in their 'emphasised'
    variant (1/1: plain MSE)."""
    _reconstruction(c, "denoising_autoencoder", dec, learning_rate=learning_rate,
                    weight_decay=weight_decay, warmup_steps=warmup_steps)
    c.objective.noise = noise
    c.objective.noise_stddev = noise_stddev
    c.objective.drop_prob = drop_prob
    c.objective.corrupted_weight = corrupted_weight
    c.objective.clean_weight = clean_weight
    return c


def colorization(c, dec, *, loss="classification", class_rebalance=True, rebalance_lambda=0.5,
                 prior_momentum=0.99, target_stride=1, learning_rate=1e-3, weight_decay=0.0,
                 warmup_steps=0):
    """Colorization (Zhang et al. 2016): ab from lightness as classification over the
    in-gamut bins of a 10-unit ab grid, soft targets (5 nearest bins, sigma 5), class
    rebalancing with lambda 0.5; ``loss='regression'`` is the L2 option."""
    _reconstruction(c, "colorization", dec, learning_rate=learning_rate,
                    weight_decay=weight_decay, warmup_steps=warmup_steps)
    c.objective.loss = loss
    c.objective.ab_grid = 10.0
    c.objective.soft_neighbors = 5
    c.objective.soft_sigma = 5.0
    c.objective.class_rebalance = class_rebalance
    c.objective.rebalance_lambda = rebalance_lambda
    c.objective.prior_momentum = prior_momentum
    c.objective.target_stride = target_stride
    return c


def dim(c, *, estimator="jsd", global_weight=0.0, local_weight=1.0, prior_weight=0.1,
        local_layer="block3", critic_hidden=512, critic_embed=512, critic_layers=1,
        y_hidden=1024, y_dim=64, prior_hidden=(1000, 200), learning_rate=1e-4,
        weight_decay=0.0, warmup_steps=0, cross_view=False):
    """Deep InfoMax (Hjelm et al. 2019), DIM(L) by default: local MI only (beta 1), JSD
    estimator, uniform-prior matching (gamma 0.1), Y = 1024-unit layer -> 64-d, 512-unit
    critics, Adam 1e-4 (``objective.global_weight=1, local_weight=0``: DIM(G)).
    ``cross_view``: Y of one augmented view against the feature maps of another (ours,
    in the spirit of AMDIM, Bachman et al. 2019)."""
    c.objective = ml_collections.ConfigDict()
    c.objective.name = "dim"
    c.objective.estimator = estimator
    c.objective.cross_view = cross_view
    c.objective.global_weight = global_weight
    c.objective.local_weight = local_weight
    c.objective.prior_weight = prior_weight
    c.objective.mine_momentum = 0.9
    c.objective.smile_clip = 5.0
    c.model.projector = mlp((y_hidden,), y_dim)
    c.model.dim = ml_collections.ConfigDict(
        dict(local_layer=local_layer, critic_hidden=critic_hidden, critic_embed=critic_embed,
             critic_layers=critic_layers, prior_hidden=tuple(prior_hidden)))
    return adamw(c, learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps)


def latent_variable_model(c, *, latent_dim=10, learning_rate=1e-4, encoder_kernel_sizes=(4, 4, 4, 4)):
    """Locatello et al. 2019's model and optimiser for 64x64 images (their Table 1 and 2, the
    beta-VAE architecture): conv 32-4-s2, 32-4-s2, 64-4-s2, 64-4-s2, FC 256, 10 Gaussian latents
    (means and log-variances); the mirrored decoder FC 256, FC 4x4x64, upconv 64, 32, 32, C
    (4x4, stride 2) to logits; Adam (beta1 0.9, beta2 0.999, eps 1e-8) at a constant 1e-4,
    no weight decay. ``encoder_kernel_sizes=(4, 4, 2, 2)`` gives disentanglement_lib's code."""
    c.model.encoder = "vae_conv"
    c.model.encoder_kwargs = ml_collections.ConfigDict(
        dict(widths=(32, 32, 64, 64), kernel_sizes=tuple(encoder_kernel_sizes),
             strides=(2, 2, 2, 2), hidden=256, latent_dim=latent_dim))
    c.model.vae_decoder = ml_collections.ConfigDict(
        dict(hidden=256, start_shape=(4, 4, 64), widths=(64, 32, 32), kernel_size=4))
    if "projector" in c.model:
        del c.model["projector"]
    adamw(c, learning_rate, weight_decay=0.0, warmup_steps=0)
    c.optimizer.end_learning_rate_factor = 1.0  # constant learning rate
    c.eval.layer = "mean"  # the latent means are the representation
    return c


def _latent_objective(c, name, likelihood):
    c.objective = ml_collections.ConfigDict()
    c.objective.name = name
    c.objective.likelihood = likelihood
    c.objective.gaussian_std = 0.5 ** 0.5
    return c


def autoencoder(c, *, likelihood="bernoulli"):
    """Deterministic autoencoder through the latent means (no KL term)."""
    return _latent_objective(c, "autoencoder", likelihood)


def denoising_ae(c, *, noise="masking", drop_prob=0.25, noise_stddev=0.3, likelihood="bernoulli"):
    """Denoising autoencoder (Vincent et al. 2008) through the latent means: masking noise
    (each pixel zeroed with ``drop_prob``) or Gaussian noise, clean-image reconstruction."""
    _latent_objective(c, "denoising_ae", likelihood)
    c.objective.noise = noise
    c.objective.drop_prob = drop_prob
    c.objective.noise_stddev = noise_stddev
    return c


def vae(c, *, beta=1.0, likelihood="bernoulli", name="vae"):
    """VAE (beta = 1) / beta-VAE (Higgins et al. 2017): ``-log p(x|z) + beta KL``;
    Locatello et al.'s beta grid {1, 2, 4, 6, 8, 16}."""
    _latent_objective(c, name, likelihood)
    c.objective.beta = float(beta)
    return c


def factor_vae(c, *, gamma=30.0, likelihood="bernoulli", disc_hidden=(1000,) * 6,
               disc_learning_rate=1e-4):
    """FactorVAE (Kim & Mnih 2018): VAE + gamma TC, TC from a 6x1000 LeakyReLU discriminator
    trained in the same step with Adam(1e-4, beta1 0.5, beta2 0.9); Locatello et al.'s gamma
    grid {10, 20, 30, 40, 50, 100}."""
    _latent_objective(c, "factor_vae", likelihood)
    c.objective.gamma = float(gamma)
    c.objective.disc_hidden = tuple(disc_hidden)
    c.objective.disc_learning_rate = disc_learning_rate
    c.objective.disc_beta1 = 0.5
    c.objective.disc_beta2 = 0.9
    return c


def beta_tcvae(c, *, beta=6.0, likelihood="bernoulli"):
    """beta-TCVAE (Chen et al. 2018): VAE + (beta - 1) TC by minibatch-weighted sampling;
    Locatello et al.'s beta grid {1, 2, 4, 6, 8, 10}."""
    _latent_objective(c, "beta_tcvae", likelihood)
    c.objective.beta = float(beta)
    return c
