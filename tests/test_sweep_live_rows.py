"""results.parquet is written as the sweep goes (orchestrator.sweep.live_rows): fed fake trials,
the callback writes each reported row at once, one per (trial, cycle) even when a retried trial
reports a cycle again, picks up trials finished before a --resume, and writes the same table as
the final collect_results; in a real smoke sweep the first row is on disk while trials still run."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from orchestrator.sweep import run_sweep
from orchestrator.sweep.live_rows import LiveResults
from orchestrator.sweep.plan import TrialSpec, plan_sweep
from orchestrator.sweep.tune import _param_spec, collect_results

REPO = Path(__file__).resolve().parents[1]
ALAC_DEMO = REPO / "configs/alac/demo.yaml"
TINY = ["dataset.options.n_train=12", "dataset.options.n_test=3", "dataset.options.height=64",
        "dataset.options.width=64", "alac.initial=3", "alac.per_cycle=3", "alac.budget=9"]


class FakeTrial:
    """What the callback reads of a Tune trial: id, config, latest checkpoint, error files."""

    def __init__(self, tune_id: str, spec: TrialSpec, folder: Path):
        self.trial_id, self.spec, self.folder = tune_id, spec, folder
        self.config = {"spec": _param_spec(spec)}
        self.checkpoint, self.pickled_error_file, self._saved = None, None, 0

    def save(self, cycles_and_mae: list[tuple[int, float]], examples: bool = False):
        """A new checkpoint whose rows.parquet holds these cycles (as a trial's state does)."""
        from ray.tune import Checkpoint

        self._saved += 1
        directory = self.folder / f"{self.trial_id}_checkpoint_{self._saved:06d}"
        directory.mkdir(parents=True)
        rows = [{"experiment": self.spec.experiment, "method": "alac", "dataset": "synthetic", "scale": "smoke",
                 "trial_id": self.spec.trial_id, "seed": self.spec.seed, "cycle": cycle, "stage": "cycle",
                 "n_labeled": 3 * cycle, "mae": mae, "rmse": mae + 1, "status": "ok", "error": None}
                for cycle, mae in cycles_and_mae]
        pd.DataFrame(rows).to_parquet(directory / "rows.parquet", index=False)
        if examples:
            (directory / "examples.npz").write_bytes(b"npz")
        self.checkpoint = Checkpoint.from_directory(str(directory))

    def fail(self, error: BaseException):
        self.pickled_error_file = str(self.folder / f"{self.trial_id}_error.pkl")
        Path(self.pickled_error_file).write_bytes(pickle.dumps(error))

    def get_pickled_error(self):
        return None

    def get_error(self):
        return None


@pytest.fixture
def two_trials(tmp_path):
    plan = plan_sweep(ALAC_DEMO, "smoke", TINY, trials=1)
    trials = [FakeTrial(f"t{i}", spec, tmp_path / "tune") for i, spec in enumerate(plan.trials)]
    return plan, trials, tmp_path / "results"


def on_disk(storage: Path) -> list[tuple[str, int, float]]:
    frame = pd.read_parquet(storage / "alac_demo/results.parquet")
    return list(zip(frame["trial_id"], frame["cycle"], frame["mae"]))


def test_each_reported_cycle_is_on_disk_at_once_and_a_repeated_cycle_replaces_its_row(two_trials):
    plan, (a, b), storage = two_trials
    live = LiveResults(plan, storage)
    a.save([(1, 10.0)])
    live.on_trial_result(1, [a, b], a, {"cycle": 1})  # Tune: the result first, its checkpoint after
    live.on_trial_save(1, [a, b], a)
    assert on_disk(storage) == [(a.spec.trial_id, 1, 10.0)]
    b.save([(1, 20.0)], examples=True)
    live.on_trial_save(2, [a, b], b)
    a.save([(1, 10.0), (2, 8.0)])
    live.on_trial_save(3, [a, b], a)
    assert sorted(on_disk(storage)) == sorted([(a.spec.trial_id, 1, 10.0), (a.spec.trial_id, 2, 8.0),
                                               (b.spec.trial_id, 1, 20.0)])
    assert (storage / f"alac_demo/examples/{b.spec.trial_id}.npz").read_bytes() == b"npz"
    # A retried trial reports cycle 2 again (and a state that lists it twice): one row, the last.
    a.save([(1, 10.0), (2, 7.0), (2, 6.5)])
    live.on_trial_save(4, [a, b], a)
    live.on_trial_complete(4, [a, b], a)
    frame = pd.read_parquet(storage / "alac_demo/results.parquet")
    assert not frame.duplicated(["trial_id", "cycle"]).any() and len(frame) == 3
    assert frame.set_index(["trial_id", "cycle"]).loc[(a.spec.trial_id, 2), "mae"] == 6.5
    assert set(frame["setting.alac.strategy"]) == {"pssw", "random"}
    assert (storage / "alac_demo/experiment.json").is_file()


def test_a_failed_trial_gets_its_failed_row_and_the_table_equals_collect_results(two_trials):
    plan, (a, b), storage = two_trials
    live = LiveResults(plan, storage)
    a.save([(1, 10.0), (2, 9.0)])
    live.on_trial_save(1, [a, b], a)
    live.on_trial_complete(1, [a, b], a)
    b.save([(1, 20.0)])
    live.on_trial_save(2, [a, b], b)
    b.fail(RuntimeError("injected failure after cycle 1"))
    live.on_trial_error(3, [a, b], b)
    frame = pd.read_parquet(storage / "alac_demo/results.parquet")
    failed = frame[frame["status"] == "failed"]
    assert list(failed["trial_id"]) == [b.spec.trial_id] and list(failed["cycle"]) == [2]
    assert failed["error"].iloc[0] == "RuntimeError: injected failure after cycle 1"
    grid = [SimpleNamespace(config=t.config, checkpoint=t.checkpoint,
                            error=pickle.loads(Path(t.pickled_error_file).read_bytes()) if t.pickled_error_file else None)
            for t in (a, b)]
    final = pd.read_parquet(collect_results(plan, grid, storage / "final")["alac_demo"])
    pd.testing.assert_frame_equal(frame, final)


def test_after_a_resume_the_trials_finished_before_keep_their_rows(two_trials):
    plan, (a, b), storage = two_trials
    a.save([(1, 10.0), (2, 9.0), (3, 8.0)])  # finished in the killed run: it never reports again
    b.save([(1, 20.0)])
    live = LiveResults(plan, storage)  # the resumed driver's callback starts empty
    b.save([(1, 20.0), (2, 19.0)])
    live.on_trial_save(1, [a, b], b)
    assert sorted((t, c) for t, c, _ in on_disk(storage)) == sorted(
        [(a.spec.trial_id, 1), (a.spec.trial_id, 2), (a.spec.trial_id, 3), (b.spec.trial_id, 1), (b.spec.trial_id, 2)])


class Watcher(threading.Thread):
    """Polls a file's (inode, mtime, size) and reads each new version's (trial, cycle) keys."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.versions, self.stop = path, [], threading.Event()

    def run(self):
        seen = None
        while not self.stop.is_set():
            try:
                stat = self.path.stat()
                stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
                if stamp != seen:
                    frame = pd.read_parquet(self.path)
                    self.versions.append((time.monotonic(), set(zip(frame["trial_id"], frame["cycle"]))))
                    seen = stamp
            except (OSError, ValueError):  # not there yet
                pass
            time.sleep(0.05)


def test_a_real_sweep_has_its_first_row_on_disk_while_trials_still_run(tmp_path, ray_session):
    plan = plan_sweep(ALAC_DEMO, "smoke", TINY, trials=1)
    watcher = Watcher(tmp_path / "alac_demo/results.parquet")
    watcher.start()
    started = time.monotonic()
    written = run_sweep(plan, tmp_path)
    ended = time.monotonic()
    watcher.stop.set()
    watcher.join()
    final = pd.read_parquet(written["alac_demo"])
    keys = set(zip(final["trial_id"], final["cycle"]))
    assert len(keys) == 6 and (final["status"] == "ok").all()
    versions = watcher.versions
    assert versions, "results.parquet never appeared"
    first_time, first_keys = versions[0]
    assert 1 <= len(first_keys) < len(keys)  # written before the sweep finished
    assert all(earlier <= later for (_, earlier), (_, later) in zip(versions, versions[1:]))  # rows only added
    assert all(version <= keys for _, version in versions)
    assert len(versions) >= 3  # rewritten as cycles came in, not once at the end
    print(f"\nlive rows: first of {len(keys)} rows on disk {first_time - started:.1f} s after run_sweep started, "
          f"{ended - first_time:.1f} s before it returned; {len(versions)} versions seen, rows per version "
          f"{[len(v) for _, v in versions]}")
