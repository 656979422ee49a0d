"""Scoring images with a trained CSRNet, written once as :class:`PoolScorer` and run two ways:
in-process (:func:`score_local`) or as a Ray Data actor pool (:func:`score_with_ray_data`).

Per image the scorer returns its id, the predicted count, the grid signature of the predicted
1/8-resolution density map (levels 0..LA), the true count when the image is annotated (for
evaluation) and, when the model has a distribution classifier, the classifier's probability that
the image is *unlabeled*. Whole-image inference, batch 1 (images differ in size).
"""

from __future__ import annotations

import numpy as np
import torch

from models import CSRNet, DomainClassifier
from orchestrator.config import DatasetConfig
from orchestrator.samples import load_sample, open_split
from orchestrator.train import from_bytes
from selection import grid_signature


def _resolve(value):
    """Model states may arrive as a Ray object reference (shipped once through the object store)."""
    if type(value).__name__ == "ObjectRef":
        import ray

        return ray.get(value)
    return value


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
    """

    def __init__(self, dataset: DatasetConfig, split: str, width: float, model_state, classifier_state=None,
                 levels: int = 3, torch_threads: int = 1, device: str = "cpu"):
        torch.set_num_threads(max(1, torch_threads))
        self.dataset = dataset
        self.items = {it.id: it for it in open_split(dataset, split)}
        self.levels = levels
        self.device = torch.device(device)
        self.model = CSRNet(width=width)
        self.model.load_state_dict(from_bytes(_resolve(model_state)))
        self.model.to(self.device).eval()
        self.classifier = None
        classifier_state = _resolve(classifier_state)
        if classifier_state is not None:
            self.classifier = DomainClassifier(self.model.feature_channels)
            self.classifier.load_state_dict(from_bytes(classifier_state))
            self.classifier.to(self.device).eval()

    @torch.no_grad()
    def score_one(self, item_id: str) -> tuple[float, int, np.ndarray, float]:
        sample = load_sample(self.items[item_id], self.dataset, with_density=False)
        phi = self.model.features(CSRNet.normalize(sample.image).to(self.device))
        density = self.model.density_head(phi)[0, 0].double().cpu().numpy()
        prob = float("nan")
        if self.classifier is not None:
            prob = float(torch.sigmoid(self.classifier(phi))[0])
        return float(density.sum()), sample.count, grid_signature(density, self.levels), prob

    def __call__(self, batch: dict) -> dict:
        ids = [str(i) for i in batch["id"]]
        rows = [self.score_one(i) for i in ids]
        return {
            "id": np.array(ids, dtype=object),
            "count": np.array([r[0] for r in rows], dtype=np.float64),
            "true_count": np.array([r[1] for r in rows], dtype=np.int64),
            "signature": np.stack([r[2] for r in rows]).astype(np.float64),
            "domain_prob": np.array([r[3] for r in rows], dtype=np.float64),
        }


def _concat(parts: list[dict]) -> dict:
    if not parts:
        return {"id": np.array([], dtype=object), "count": np.zeros(0), "true_count": np.zeros(0, np.int64),
                "signature": np.zeros((0, 0)), "domain_prob": np.zeros(0)}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def score_local(scorer_kwargs: dict, ids: list[str], batch_size: int = 4) -> dict:
    """Score ``ids`` in this process with one :class:`PoolScorer`; output in the order of ``ids``."""
    scorer = PoolScorer(**scorer_kwargs)
    parts = [scorer({"id": np.array(ids[i:i + batch_size], dtype=object)}) for i in range(0, len(ids), batch_size)]
    return _concat(parts)


def score_with_ray_data(scorer_kwargs: dict, ids: list[str], actors: int, batch_size: int = 4,
                        cpus_per_actor: float = 1.0, gpus_per_actor: float = 0.0) -> dict:
    """Score ``ids`` with Ray Data ``map_batches`` over an actor pool of ``actors``
    :class:`PoolScorer` instances. The model states go through the object store once
    (``ray.put``), not once per batch. Output is reordered to the order of ``ids``."""
    import ray

    kwargs = dict(scorer_kwargs)
    kwargs["model_state"] = ray.put(kwargs["model_state"])
    if kwargs.get("classifier_state") is not None:
        kwargs["classifier_state"] = ray.put(kwargs["classifier_state"])
    dataset = ray.data.from_items([{"id": i} for i in ids])
    scored = dataset.map_batches(
        PoolScorer,
        fn_constructor_kwargs=kwargs,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
    )
    rows = scored.take_all()
    position = {item_id: n for n, item_id in enumerate(ids)}
    rows.sort(key=lambda r: position[str(r["id"])])
    return {
        "id": np.array([str(r["id"]) for r in rows], dtype=object),
        "count": np.array([r["count"] for r in rows], dtype=np.float64),
        "true_count": np.array([r["true_count"] for r in rows], dtype=np.int64),
        "signature": np.stack([r["signature"] for r in rows]).astype(np.float64) if rows else np.zeros((0, 0)),
        "domain_prob": np.array([r["domain_prob"] for r in rows], dtype=np.float64),
    }


def mae_rmse(predicted: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """MAE and RMSE of counts (the papers print RMSE under the name "MSE")."""
    err = np.asarray(predicted, np.float64) - np.asarray(true, np.float64)
    return float(np.abs(err).mean()), float(np.sqrt((err ** 2).mean()))


def density_examples(scorer_kwargs: dict, ids: list[str]) -> dict[str, np.ndarray]:
    """Arrays for the predicted-vs-true density figure (AL-AC Fig. 5): for each id ``i``,
    ``image_<i>`` (H, W, 3) uint8, ``target_<i>`` (h, w) float32 = the count-exact target at
    1/8, ``predicted_<i>`` (h, w) float32; plus ``ids``."""
    from orchestrator.data import block_sum

    scorer = PoolScorer(**scorer_kwargs)
    arrays = {"ids": np.array(ids, dtype=str)}
    for n, item_id in enumerate(ids):
        sample = load_sample(scorer.items[item_id], scorer.dataset, with_density=True)
        with torch.no_grad():
            predicted = scorer.model(CSRNet.normalize(sample.image).to(scorer.device))[0, 0].cpu().numpy()
        arrays[f"image_{n}"] = sample.image
        arrays[f"target_{n}"] = block_sum(sample.density, 8).astype(np.float32)
        arrays[f"predicted_{n}"] = predicted.astype(np.float32)
    return arrays
