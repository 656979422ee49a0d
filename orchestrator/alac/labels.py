"""Who is labeled, and since which cycle: the one source of truth of an AL-AC trial."""

from __future__ import annotations


class LabelState:
    """The pool and its labeled subset, in labeling order, with the cycle each id was labeled in.

    ``pool_ids`` fixes the pool order; :attr:`unlabeled_ids` keeps it. Serialise with
    :meth:`state_dict` / :meth:`load_state_dict` (plain lists, JSON-safe).
    """

    def __init__(self, pool_ids: list[str]):
        if len(set(pool_ids)) != len(pool_ids):
            raise ValueError("pool_ids contains duplicates")
        self.pool_ids = list(pool_ids)
        self._pool = set(self.pool_ids)
        self._labeled: dict[str, int] = {}

    def label(self, ids: list[str], cycle: int) -> None:
        """Mark ``ids`` labeled at ``cycle``; unknown or already labeled ids are errors."""
        for item_id in ids:
            if item_id not in self._pool:
                raise KeyError(f"{item_id!r} is not in the pool")
            if item_id in self._labeled:
                raise ValueError(f"{item_id!r} is already labeled (cycle {self._labeled[item_id]})")
        for item_id in ids:
            self._labeled[item_id] = cycle

    @property
    def labeled_ids(self) -> list[str]:
        return list(self._labeled)

    @property
    def unlabeled_ids(self) -> list[str]:
        return [i for i in self.pool_ids if i not in self._labeled]

    def cycle_of(self, item_id: str) -> int:
        return self._labeled[item_id]

    def __len__(self) -> int:
        return len(self._labeled)

    def state_dict(self) -> dict:
        return {"pool_ids": list(self.pool_ids), "labeled": [[i, c] for i, c in self._labeled.items()]}

    def load_state_dict(self, state: dict) -> None:
        if list(state["pool_ids"]) != self.pool_ids:
            raise ValueError("checkpoint pool differs from this trial's pool")
        self._labeled = {str(i): int(c) for i, c in state["labeled"]}
