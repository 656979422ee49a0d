"""Per-step losses and per-epoch validation of a CSS-CCNN stage (used by
:func:`orchestrator.cssccnn.stages.run_stage`).

Training losses (one batch of ``B`` square crops, ``(B, c, c, 3) uint8``):

* rotation: cross entropy of the rotation head on the crops' rotated centres;
* sinkhorn: ``loss_scale x Sinkhorn(cells, prior samples)`` where ``cells`` are the predicted
  counts of the ``cell x cell`` blocks of the 1/8 density (``B x 9`` for 224 crops) and the
  prior samples are drawn fresh for the step (``prior_samples`` of them, 1568 in the reference);
  CSS-CCNN++ splits both by the 30th percentile (cells by their edge pseudo counts, samples by
  value) and adds the two Sinkhorn terms; a limited-data labeled step matches the cells to the
  ground-truth cell counts of the same crops;
* supervised: eq. 4 regression on the 1/8 density (``models.density_regression_loss``).

Validation (label-free except for the supervised baselines), against ONE set of prior samples
drawn once per stage from the seed, so that the curve moves only when the model does (the
reference reuses the last training step's samples):

* rotation: accuracy over the held-out images' centre views in all four rotations;
* sinkhorn (CSS-CCNN): per held-out image, ``loss_scale x Sinkhorn(cells of the whole image,
  validation prior samples)``, averaged over images (the reference's ``test_network``);
* sinkhorn (CSS-CCNN++): fixed crops (``validation_crops_per_image`` per held-out image, batches
  of ``batch``), sparse and dense terms averaged over batches (the reference's ``val_network``);
* supervised: MAE of whole held-out images.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from models import CSSCCNN, density_regression_loss
from orchestrator.core.finite import HINT, NonFiniteLoss
from orchestrator.cssccnn.crops import CROP_GRID, centre_rotations, cut, fixed_crop_specs, rotation_view
from orchestrator.data import block_sum
from ot.cells import cell_counts
from ot.edges import EdgeDensityConfig, edge_pseudo_counts
from ot.sinkhorn import SinkhornConfig, sinkhorn_loss
from ot.split import css_ccnn_plus_plus_loss

PURPOSE_VALIDATION_PRIOR, PURPOSE_VALIDATION_CROPS = 3, 4


def batch_crops(images, specs, crop: int, with_density: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut ``specs`` from prepared images -> ``(B, crop, crop, 3) uint8`` and, when asked,
    ``(B, crop, crop) float32`` density crops (``None`` otherwise)."""
    pixels = np.stack([cut(images[s.image_index].image, s, crop) for s in specs])
    if not with_density:
        return pixels, None
    return pixels, np.stack([cut(images[s.image_index].density, s, crop) for s in specs])


def density_targets(densities: np.ndarray) -> torch.Tensor:
    """``(B, c, c)`` density crops -> ``(B, 1, c/8, c/8)`` float32 block sums (count-exact)."""
    return torch.from_numpy(np.stack([block_sum(d, CROP_GRID) for d in densities])).unsqueeze(1).float()


def plus_plus_terms(cells: torch.Tensor, pseudo: torch.Tensor, samples: torch.Tensor, percentile: float,
                    config: SinkhornConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The CSS-CCNN++ split loss terms (unscaled): ``(sparse, dense)``, or ``(single, None)`` when
    too few cells are sparse and one Sinkhorn over everything is used (``ot.split``).
    ``cells``/``pseudo`` ``(N,)`` in the same order, ``samples`` ``(M,)``."""
    parts = css_ccnn_plus_plus_loss(cells, pseudo, samples, config, sparse_fraction=percentile / 100.0)
    return (parts.sparse, parts.dense) if parts.used_split else (parts.total, None)


def pseudo_cell_counts(images: np.ndarray, cell: int, grayscale: str = "luminance") -> torch.Tensor:
    """Edge pseudo counts of ``(B, c, c, 3) uint8`` crops per cell -> ``(B, cells)``, cells in
    the order of :func:`ot.cells.cell_counts` (the batch maximum scales them, ``ot.edges``);
    ``grayscale``: the Canny input's conversion (``cssccnn.edge_grayscale``)."""
    return torch.from_numpy(edge_pseudo_counts(images, EdgeDensityConfig(grayscale=grayscale), cell_size=cell))


@contextlib.contextmanager
def diverged_cells(cells: torch.Tensor):
    """The OT losses refuse non-finite inputs with a ValueError (their own check, every step);
    when the predicted ``cells`` are what is not finite, the network diverged: re-raised as
    :class:`~orchestrator.core.finite.NonFiniteLoss`. Looked at only once a loss has refused
    them, so no extra host sync."""
    try:
        yield
    except ValueError as error:
        if bool(torch.isfinite(cells.detach()).all()):
            raise
        raise NonFiniteLoss(f"the predicted cell counts are nan or inf ({HINT})") from error


class StageLosses:
    """Losses and validation of one stage; holds the validation views, built once."""

    def __init__(self, job, model: CSSCCNN, holdout, device: torch.device):
        self.job, self.css, self.model, self.device = job, job.css, model, device
        self.cell = job.css.cell_size
        self.sinkhorn = SinkhornConfig(backend=job.css.sinkhorn_backend, epsilon=job.css.sinkhorn_epsilon,
                                       max_iterations=job.css.sinkhorn_max_iter,
                                       tolerance=job.css.sinkhorn_tolerance)
        crop = job.css.crop
        if job.kind == "rotation":
            self.views = [centre_rotations(p.image, crop // 2)[0] for p in holdout]
        elif job.kind == "supervised":
            self.views = [(p.image, p.count) for p in holdout]
        elif job.css.plus_plus:
            rng = np.random.default_rng([job.seed, PURPOSE_VALIDATION_CROPS])
            specs = fixed_crop_specs([p.image.shape[:2] for p in holdout], crop,
                                     job.css.validation_crops_per_image, rng)
            self.views = [batch_crops(holdout, specs[i:i + job.batch], crop, False)[0]
                          for i in range(0, len(specs), job.batch)]
        else:
            self.views = [p.image for p in holdout]
        self.validation_prior = None
        if job.kind == "sinkhorn":
            rng = np.random.default_rng([job.seed, PURPOSE_VALIDATION_PRIOR])
            self.validation_prior = torch.from_numpy(job.prior.sample(job.css.prior_samples, rng)).float()

    # ------------------------------------------------------------------ forward passes
    def _normalized(self, images: np.ndarray) -> torch.Tensor:
        array = np.ascontiguousarray(images)
        if not array.flags.writeable:  # cached images are read-only; torch wants writable memory
            array = array.copy()
        batch = torch.from_numpy(array).permute(0, 3, 1, 2)
        return CSSCCNN.normalize(batch).to(self.device)

    def density(self, images: np.ndarray) -> torch.Tensor:
        """``(B, H, W, 3) uint8`` -> ``(B, 1, H/8, W/8)``; the frozen extractor runs without
        autograd (same values, no stored activations)."""
        x = self._normalized(images)
        if self.model.features_frozen:
            with torch.no_grad():
                features = self.model.extract(x)
            return self.model.density_from_features(features)
        return self.model(x)

    def _sinkhorn(self, cells: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        with diverged_cells(cells):
            return sinkhorn_loss(cells.reshape(-1), samples.to(cells.device), self.sinkhorn)

    def _split_loss(self, cells: torch.Tensor, images: np.ndarray, samples: torch.Tensor):
        pseudo = pseudo_cell_counts(images, self.cell, self.css.edge_grayscale).to(cells.device)
        with diverged_cells(cells):
            return plus_plus_terms(cells.reshape(-1), pseudo.reshape(-1), samples.to(cells.device),
                                   self.css.sparse_percentile, self.sinkhorn)

    # ------------------------------------------------------------------ training
    def train_loss(self, images: np.ndarray, densities: np.ndarray | None, specs, prior_rng: np.random.Generator,
                   labeled_step: bool) -> torch.Tensor:
        kind, scale = self.job.kind, self.css.loss_scale
        if kind == "rotation":
            views = np.stack([rotation_view(img, s.rotation) for img, s in zip(images, specs)])
            labels = torch.tensor([s.rotation for s in specs], dtype=torch.long, device=self.device)
            return F.cross_entropy(self.model.rotation_logits(self._normalized(views)), labels)
        predicted = self.density(images)
        if kind == "supervised":
            return density_regression_loss(predicted, density_targets(densities).to(self.device))
        cells = cell_counts(predicted, self.cell)
        if labeled_step:
            truth = cell_counts(density_targets(densities), self.cell)
            return scale * self._sinkhorn(cells, truth)
        samples = torch.from_numpy(self.job.prior.sample(self.css.prior_samples, prior_rng)).float()
        if not self.css.plus_plus:
            return scale * self._sinkhorn(cells, samples)
        sparse, dense = self._split_loss(cells, images, samples)
        return scale * (sparse if dense is None else sparse + dense)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def _view_sums(self, view) -> list[float]:
        kind, scale = self.job.kind, self.css.loss_scale
        if kind == "rotation":
            logits = self.model.rotation_logits(self._normalized(view))
            return [float((logits.argmax(1).cpu() == torch.arange(len(view))).sum()), float(len(view))]
        if kind == "supervised":
            image, count = view
            return [abs(float(self.density(image[None]).double().sum()) - count), 1.0]
        if not self.css.plus_plus:
            cells = cell_counts(self.density(view[None]), self.cell)
            return [scale * float(self._sinkhorn(cells, self.validation_prior)), 1.0]
        cells = cell_counts(self.density(view), self.cell)
        sparse, dense = self._split_loss(cells, view, self.validation_prior)
        if dense is None:  # one-term fallback: count it as sparse, dense 0
            dense = torch.zeros(())
        return [scale * float(sparse), scale * float(dense), 1.0]

    def validate(self, rank: int = 0, world_size: int = 1) -> dict:
        """Validation metrics of the current model (same on every rank)."""
        was_training = self.model.training
        self.model.eval()
        sums = None
        for view in self.views[rank::world_size]:
            values = self._view_sums(view)
            sums = values if sums is None else [a + b for a, b in zip(sums, values)]
        if sums is None:
            sums = [0.0] * (3 if self.job.kind == "sinkhorn" and self.css.plus_plus else 2)
        totals = torch.tensor(sums, dtype=torch.float64, device=self.device)
        if world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(totals)
        totals = totals.cpu().tolist()
        self.model.train(was_training)
        count = max(totals[-1], 1.0)
        kind = self.job.kind
        if kind == "rotation":
            return {"rotation_accuracy": totals[0] / count}
        if kind == "supervised":
            return {"mae": totals[0] / count}
        if self.css.plus_plus:
            sparse, dense = totals[0] / count, totals[1] / count
            return {"sinkhorn": sparse + dense, "sparse": sparse, "dense": dense}
        return {"sinkhorn": totals[0] / count}
