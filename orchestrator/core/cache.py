"""A content-keyed cache for work that many trials share (e.g. a label-free pretraining that
every strategy, trial and cycle of a sweep starts from): computed once, by whichever process
gets there first, while the others wait for it.

An entry is ``CACHE_DIR/<kind>/<sha256 of the key, 16 hex>/`` holding ``value.bin`` (bytes)
and ``key.json`` (the key in full, and who computed it, when and in how many seconds). A file
lock (``fcntl.flock`` on ``.lock`` in the entry, so POSIX and NFS-with-locking storage) makes
concurrent trials on one node, or on nodes sharing the storage, compute an entry once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.core.files import write_atomic, write_json_atomic

VALUE, KEY = "value.bin", "key.json"


def entry_dir(cache_dir: str | Path, kind: str, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir) / kind / digest


def cached(cache_dir: str | Path, kind: str, key: dict, compute: Callable[[], bytes],
           log: Callable[[str], None] = print) -> tuple[bytes, bool]:
    """``(value, hit)``: the entry's bytes when present (``hit = True``), else ``compute()``'s,
    stored first. ``key`` must be JSON-serialisable and say everything the value depends on."""
    entry = entry_dir(cache_dir, kind, key)
    entry.mkdir(parents=True, exist_ok=True)
    with open(entry / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent computation of the same entry finishes first
        try:
            if (entry / VALUE).is_file():
                return (entry / VALUE).read_bytes(), True
            log(f"{kind}: computing {entry} (once; later trials reuse it)")
            started = time.perf_counter()
            value = compute()
            write_atomic(entry / VALUE, lambda tmp: tmp.write_bytes(value))
            write_json_atomic(entry / KEY, {"key": key, "computed_by": f"{socket.gethostname()}:{os.getpid()}",
                                            "seconds": round(time.perf_counter() - started, 3),
                                            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
            return value, False
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
