"""Content hashes: of files (pair shards, teachers) and of JSON-able settings (fingerprints).

A fingerprint names what determines a result, so a scratch folder or checkpoint keyed by it is
reused exactly when the result would come out the same.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def hash_files(*paths: Path, named: bool = False) -> str:
    """sha256 of the files' bytes in order; `named` also hashes each file's name before its bytes."""
    h = hashlib.sha256()
    for p in paths:
        if named:
            h.update(Path(p).name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
