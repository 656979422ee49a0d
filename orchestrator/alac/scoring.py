"""Scoring images with a trained CSRNet, written once as :class:`PoolScorer` and run in-process
or as a Ray Data actor pool (:func:`score_ids`, through :func:`orchestrator.core.execution.map_ids`).

Per image the scorer returns its id, the predicted count, the grid signature of the predicted
1/8-resolution density map (levels 0..LA), the true count when the image is annotated (for
evaluation) and, when the model has a distribution classifier, the classifier's probability that
the image is *unlabeled*. Whole-image inference, batch 1 (images differ in size), on the
device the ``ray`` section names (:func:`score_ids`: CUDA when ``ray.use_gpu``); per image the
density map comes back to the CPU once (the signature is computed there). In-process scoring
shows a progress line where a command line enabled :mod:`orchestrator.core.progress` (the
trial's test split and pool, and ``annotate propose`` through the same :func:`score_ids`); Ray
Data actors never draw one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from models import CSRNet, DomainClassifier
from orchestrator.config import DatasetConfig, RayConfig
from orchestrator.core import progress
from orchestrator.core.counting import count_of
from orchestrator.core.execution import local_device, map_ids, resolve_refs, to_device, worker_device
from orchestrator.core.samples import load_sample, open_split
from orchestrator.core.tensors import from_bytes
from orchestrator.data import block_sum
from selection import grid_signature

EMPTY_SCORES = {"id": np.array([], dtype=object), "count": np.zeros(0), "true_count": np.zeros(0, np.int64),
                "signature": np.zeros((0, 0)), "domain_prob": np.zeros(0)}


class PoolScorer:
    """Callable on a batch ``{"id": array of str}`` -> ``{"id", "count", "true_count",
    "signature" (B, 4^0+..+4^LA), "domain_prob"}`` numpy arrays.

    Args:
        dataset: which dataset; the scorer opens ``split`` itself (so Ray actors read images
            locally instead of receiving pixels).
        split: the split the ids belong to.
        width: CSRNet width.
        model_state: ``torch.save`` bytes of the CSRNet state (or an ObjectRef to them).
        classifier_state: same for the distribution classifier, or ``None``.
        levels: grid-signature levels (LA).
        torch_threads: set explicitly: Ray reuses worker processes whose torch kept the thread
            count of its first import.
        on_scored: called with the number of images after each batch (a progress line's
            ``advance``); ``None`` (the default, and always on Ray actors): nothing is called.
    """

    def __init__(self, dataset: DatasetConfig, split: str, width: float, model_state, classifier_state=None,
                 levels: int = 3, torch_threads: int = 1, device: str = "cpu",
                 on_scored: Callable[[int], None] | None = None):
        torch.set_num_threads(max(1, torch_threads))
        resolved = resolve_refs({"model_state": model_state, "classifier_state": classifier_state})
        self.dataset = dataset
        self.items = {it.id: it for it in open_split(dataset, split)}
        self.levels = levels
        self.on_scored = on_scored
        self.device = torch.device(device)
        self.model = CSRNet(width=width)
        self.model.load_state_dict(from_bytes(resolved["model_state"]))
        self.model.to(self.device).eval()
        self.classifier = None
        if resolved["classifier_state"] is not None:
            self.classifier = DomainClassifier(self.model.feature_channels)
            self.classifier.load_state_dict(from_bytes(resolved["classifier_state"]))
            self.classifier.to(self.device).eval()

    @torch.no_grad()
    def score_one(self, item_id: str) -> tuple[float, int, np.ndarray, float]:
        sample = load_sample(self.items[item_id], self.dataset, with_density=False)
        phi = self.model.features(to_device(CSRNet.normalize(sample.image), self.device))
        density = self.model.density_head(phi)[0, 0]
        prob = torch.sigmoid(self.classifier(phi))[0] if self.classifier is not None else None
        density = density.cpu()  # the one copy back (a no-op on the CPU)
        prob = float("nan") if prob is None else float(prob)
        signature = grid_signature(density.double().numpy(), self.levels)
        return count_of(density), sample.count, signature, prob

    def __call__(self, batch: dict) -> dict:
        ids = [str(i) for i in batch["id"]]
        rows = [self.score_one(i) for i in ids]
        if self.on_scored is not None:
            self.on_scored(len(ids))
        return {
            "id": np.array(ids, dtype=object),
            "count": np.array([r[0] for r in rows], dtype=np.float64),
            "true_count": np.array([r[1] for r in rows], dtype=np.int64),
            "signature": np.stack([r[2] for r in rows]).astype(np.float64),
            "domain_prob": np.array([r[3] for r in rows], dtype=np.float64),
        }


def score_ids(scorer_kwargs: dict, ids: list[str], ray_config: RayConfig) -> dict:
    """:class:`PoolScorer` outputs for ``ids`` (in their order), in-process or on Ray Data as
    ``ray_config`` says; the model states go through the object store once. The device is the
    config's (CUDA when ``ray.use_gpu``) unless ``scorer_kwargs`` names one. In-process, a
    progress line ``score <split>`` counts the images (silent unless a command line enabled it)."""
    in_process = ray_config.score_actors < 1
    if "device" not in scorer_kwargs:
        scorer_kwargs = {**scorer_kwargs, "device": local_device(ray_config) if in_process else worker_device(ray_config)}
    if not in_process or not ids:
        return map_ids(PoolScorer, scorer_kwargs, ids, ray_config, EMPTY_SCORES,
                       large_args=("model_state", "classifier_state"))
    with progress.bar(f"score {scorer_kwargs.get('split', 'images')}", len(ids), unit="img") as line:
        return map_ids(PoolScorer, {**scorer_kwargs, "on_scored": line.advance}, ids, ray_config, EMPTY_SCORES)


def density_examples(scorer_kwargs: dict, ids: list[str]) -> dict[str, np.ndarray]:
    """Arrays for the predicted-vs-true density figure (AL-AC Fig. 5): for each id ``i``,
    ``image_<i>`` (H, W, 3) uint8, ``target_<i>`` (h, w) float32 = the count-exact target at
    1/8, ``predicted_<i>`` (h, w) float32; plus ``ids``."""
    from orchestrator.core.counting import predict_density

    scorer = PoolScorer(**scorer_kwargs)
    arrays = {"ids": np.array(ids, dtype=str)}
    for n, item_id in enumerate(ids):
        sample = load_sample(scorer.items[item_id], scorer.dataset, with_density=True)
        predicted = predict_density(scorer.model, sample.image, scorer.device).cpu().numpy()
        arrays[f"image_{n}"] = sample.image
        arrays[f"target_{n}"] = block_sum(sample.density, 8).astype(np.float32)
        arrays[f"predicted_{n}"] = predicted.astype(np.float32)
    return arrays
