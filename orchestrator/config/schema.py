"""The typed experiment config: frozen dataclasses, one per section, with the paper's defaults.

Built and validated by :mod:`orchestrator.config.loading`; every method validates its own
section further (``orchestrator.alac.validate``, ``orchestrator.cssccnn.validate``)."""

from __future__ import annotations

import dataclasses

SCALES = ("smoke", "demo", "paper")
METHODS = ("alac", "cssccnn")
#: How a network starts (``model.start``); ``None`` in a config = inferred, see ModelConfig.
STARTS = ("random", "imagenet", "self_supervised", "weights")
#: CSRNet initialisations (= ``models.csrnet.INITS``; not imported, configs load without torch).
INITS = ("normal", "kaiming")
OPTIMIZERS = ("sgd", "adam")  # = orchestrator.core.tensors.OPTIMIZERS (configs load without torch)
PRETEXT_TASKS = ("rotation", "zoom")


class ConfigError(ValueError):
    """A config problem; the message names the file and the dotted key."""


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Which data. ``root`` is the dataset's own folder; a relative root is resolved against
    ``$COUNTING_DATA_ROOT`` when that is set. ``max_side`` caps the longer image side (images and
    points are rescaled together, counts unchanged); ``scale`` instead shrinks every image by the
    same factor in (0, 1], so people keep one size across images of different resolutions (what a
    per-cell count prior needs); ``limit_*`` keep the first N items.
    ``holdout``: hold out this many train images (a fixed draw, the same for every trial and
    seed) and evaluate on them *instead of* the test split, so that training settings can be
    chosen without looking at the test images; None = train and test as the dataset defines."""

    name: str = "synthetic"
    root: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    options: dict = dataclasses.field(default_factory=dict)
    max_side: int | None = None
    scale: float | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    holdout: int | None = None


@dataclasses.dataclass(frozen=True)
class PretextConfig:
    """The label-free start of a CSRNet front end (``model.start: self_supervised``): trained on
    the pool's own images (unlabeled, so legitimate for an active learner) with a pretext task.
    ``rotation``: each step takes ``crops`` random ``crop`` x ``crop`` crops (flipped at random),
    shows each in all four rotations, and trains the front end + a small head (2 x 2 average
    pool -> linear -> 4 logits) with cross entropy, ``steps`` Adam steps at ``lr``. ``zoom``: the
    same, with each of ``crops`` centres seen at four zooms (1, 1.25, 1.5, 2 crop sides, resized
    to ``crop``) and the head telling which."""

    task: str = "rotation"
    steps: int = 300
    crops: int = 4
    crop: int = 64
    lr: float = 1e-3


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Network width (1.0 = the paper's) and how the network starts.

    ``start``: ``imagenet`` (the paper's: ImageNet VGG16 front end from ``pretrained``, a file or
    URL in torchvision ``features.N.*`` naming), ``weights`` (a whole network from ``weights``:
    CSRNet-pytorch or ours), ``self_supervised`` (the front end pretrained label-free on the pool,
    see :class:`PretextConfig`; cached, computed once per dataset, width, seed and settings) or
    ``random``. ``None`` = inferred: ``weights`` when ``weights`` is set, else ``imagenet`` when
    ``pretrained`` is set, else ``random``.

    ``init`` of what is not loaded (``INITS``): ``normal`` = N(0, 0.01), the paper's for a back
    end behind the ImageNet front end; ``kaiming`` = He, made for a randomly started deep ReLU
    stack. ``None`` = ``normal`` behind ImageNet or whole-network weights, ``kaiming`` otherwise.
    CSRNet only (CSS-CCNN has its own initialisation)."""

    width: float = 1.0
    pretrained: str | None = None
    weights: str | None = None
    start: str | None = None
    init: str | None = None
    self_supervised: PretextConfig = dataclasses.field(default_factory=PretextConfig)

    @property
    def resolved_start(self) -> str:
        if self.start is not None:
            return self.start
        return "weights" if self.weights else "imagenet" if self.pretrained else "random"

    @property
    def resolved_init(self) -> str:
        if self.init is not None:
            return self.init
        return "normal" if self.resolved_start in ("imagenet", "weights") else "kaiming"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """AL-AC's regressor training per cycle, ``alac.train`` (METHOD.md: SGD lr 1e-7, momentum
    0.95, weight decay 5e-4, 100 epochs, 2 patches per minibatch, patches augmented to 1200).

    ``optimizer``: ``sgd`` (the paper's; ``momentum`` applies) or ``adam`` (default betas,
    ``momentum`` unused); ``weight_decay`` is the L2 term of either. The distribution classifier
    is trained by the same kind of optimiser. ``patch_side``: training patches' side as a
    fraction of the image's (0.5 = the paper's quarter-size patches). ``pairs_per_step``: pairs of
    patches per optimisation step (1 = the paper's minibatch of two). ``grad_clip``: the largest
    global gradient norm of a step (None = no clipping, the paper's). ``lr_schedule``: ``constant``
    (the paper's) or ``cosine`` (every cycle's learning rate falls from ``lr`` to 0 over its steps,
    half a cosine, and starts again at ``lr`` in the next cycle; the classifier's with it).
    ``ema_decay``: the cycle's model is an exponential moving average of its weights over the
    steps with this decay per step (None = the last step's weights, the paper's)."""

    optimizer: str = "sgd"

    lr: float = 1e-7
    momentum: float = 0.95
    weight_decay: float = 5e-4
    epochs: int = 100
    reference_total: int = 1200
    max_steps_per_epoch: int | None = None
    patch_side: float = 0.5  # patch side / image side: 0.5 = the paper's quarter-size patches
    pairs_per_step: int = 1
    grad_clip: float | None = None
    lr_schedule: str = "constant"
    ema_decay: float | None = None


@dataclasses.dataclass(frozen=True)
class ALConfig:
    """Active-learning cycle settings: ``initial`` = m0, ``per_cycle`` = m, ``budget`` = M."""

    initial: int = 10
    per_cycle: int = 10
    budget: int = 30
    strategy: str = "pssw"
    levels: int = 3  # grid-signature levels 0..LA
    alignment: bool = True  # distribution alignment (GRL + latent MixUp) in the last cycle
    alignment_every_cycle: bool = False  # AL-AC-v
    domain_pick: str = "most_unlabeled"  # AL-AC-v's picks: highest P(unlabeled) (the paper's) or most_labeled
    mixup: bool = True  # latent MixUp in the alignment loss; false = the "GRL only" ablation
    beta: float = 3.0
    grl_multiplier: float = -1.0
    mixup_alpha: float = 0.5
    count_threshold: float = 200.0  # for the count_threshold strategy
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """One CSS-CCNN training stage's schedule and SGD optimiser: ``cssccnn.stage1`` (rotation
    self-supervision) or ``cssccnn.stage2`` (Sinkhorn matching; also the labeled baselines,
    at ``supervised_lr``). ``steps_per_epoch`` (None: ``cssccnn.steps_per_epoch``, itself None =
    one pass over the train images) sets this stage's steps between two validations;
    ``optimizer`` is ``sgd`` (the paper's) or ``adam`` (momentum then unused)."""

    epochs: int = 100
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch: int = 4
    steps_per_epoch: int | None = None
    optimizer: str = "sgd"


@dataclasses.dataclass(frozen=True)
class CSSConfig:
    """CSS-CCNN settings (METHOD.md, CSS-CCNN section; defaults = the paper on ShanghaiTech A).

    ``baseline`` picks what the trial produces: ``none`` (CSS-CCNN itself), ``random`` (stage 1
    + untrained head), ``mean``, ``pprior``, ``self_supervised_labels`` (stage-1 features +
    supervised head), ``fully_supervised``. ``labeled_images > 0`` is the limited-data variant
    (labeled and unlabeled batches alternating ``labeled_ratio``:1)."""

    plus_plus: bool = False
    baseline: str = "none"
    crop: int = 224
    # stage 1: rotation self-supervision
    # (the reference code's epochs: 1000 for stage 1, best epoch by held-out rotation accuracy;
    # 600 for stage 2, patience 300)
    stage1: StageConfig = dataclasses.field(default_factory=lambda: StageConfig(epochs=1000))
    holdout_fraction: float = 0.1
    # stage 2: Sinkhorn distribution matching, frozen features
    stage2: StageConfig = dataclasses.field(
        default_factory=lambda: StageConfig(epochs=600, lr=1e-5, momentum=0.9, weight_decay=1e-4, batch=32))
    steps_per_epoch: int | None = None
    loss_scale: float = 0.01
    prior_samples: int = 1568
    sinkhorn_backend: str = "reference"  # reference | exact; geomloss is rejected for training (validate_css)
    sinkhorn_epsilon: float = 0.1
    sinkhorn_max_iter: int = 1000
    sinkhorn_tolerance: float = 0.1
    patience: int = 300
    moving_average: int = 5
    # prior
    alpha: float = 2.0
    c_fmax: float = 3000.0
    prior_cdf: str = "unnormalised"
    # CSS-CCNN++
    sparse_percentile: float = 30.0
    dense_weight: float = 0.1
    plus_plus_moving_average: int = 10
    plus_plus_patience: int | None = None  # ++'s stage-2 patience; None = ``patience`` (the reference keeps 300 on QNRF)
    edge_grayscale: str = "luminance"  # ++ Canny input: luminance, or reference_bgr (the reference's BGR2GRAY on RGB)
    # limited data (paper section 4.8)
    labeled_images: int = 0
    labeled_ratio: int = 5
    # added for the trial runner (defaults = the reference code)
    cell_size: int = 8  # cell side in output pixels (8 = 64 input pixels; 3 x 3 cells per 224 crop)
    prior_cells_per_crop: int = 16  # C_max = c_fmax / (cells per crop x crops per image), 4 x 4 ...
    prior_crops_per_image: int = 4  # ... and 4 crops in the reference; also the Mean/Pprior image counts
    prior_num_images: int | None = None  # S in CDF(C_max) > 1 - 1/S; None = train + test images
    prior_draw_mode: str = "sum_of_cells"  # CCNN Pprior: sum of cells_per_image draws, or scaled_cell
    plus_plus_divergence: float = 1.0  # ++: stop when the smoothed sparse loss exceeds its minimum by this
    validation_crops_per_image: int = 5  # ++ validation: fixed crops per held-out image
    supervised_lr: float = 1e-5  # the labeled baselines' head (or whole network) learning rate
    checkpoint_every: int = 1  # epochs between a stage's progress checkpoints


@dataclasses.dataclass(frozen=True)
class RayConfig:
    """Where the work runs. ``train_workers = 0`` trains in-process; ``>= 1`` runs the same loop
    under Ray Train (gloo on CPU, NCCL on GPU). ``score_actors = 0`` scores the pool in-process;
    ``>= 1`` runs the same scorer as a Ray Data actor pool.

    ``use_gpu``: train and score on CUDA (in-process work needs CUDA in this process, else a
    ``ConfigError``; Ray workers get a GPU each). ``amp``: mixed precision (bfloat16 autocast)
    for AL-AC's training forward and loss; needs ``use_gpu`` (refused otherwise, so CPU runs stay
    bit-reproducible) and is refused for CSS-CCNN, whose Sinkhorn loss needs float32."""

    train_workers: int = 0
    use_gpu: bool = False
    amp: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0
    score_actors: int = 0
    cpus_per_actor: float = 1.0
    score_batch_size: int = 4
    torch_threads: int = 1
    trial_cpus: float = 1.0  # a Tune trial's own share; 0.01 when its Train workers hold the CPUs
    max_concurrent_trials: int = 2
    max_failures: int = 1  # Tune retries of a failed trial (resuming from its checkpoint)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    experiment: str
    method: str
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    alac: ALConfig = dataclasses.field(default_factory=ALConfig)
    cssccnn: CSSConfig = dataclasses.field(default_factory=CSSConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)
    seed: int = 0
    trials: int = 10
    grid: dict = dataclasses.field(default_factory=dict)  # dotted key -> list of values (sweeps)
    paper: dict = dataclasses.field(default_factory=dict)  # the paper's reported numbers, for reports
    scale: str = "paper"
    source: str | None = None  # the file it came from

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
