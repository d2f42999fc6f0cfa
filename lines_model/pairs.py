"""Pair storage: (noise N, clean C) pairs in fixed-size shards of raw .npy files.

Layout of a pairs folder:
    manifest.json             teacher identity, sampler, steps, precision, seed, stream, counts, shard hashes
    shard-00000.noise.npy     float32 (shard_size, C, H, W)
    shard-00000.clean.npy     float32 (shard_size, C, H, W), in [-1, 1]
    shard-00000.sha256        the digest of the shard's two files, written last (PairsWriter)

Shard j holds pairs [j*shard_size, (j+1)*shard_size) of the noise stream. Every file is written
atomically and a shard enters the manifest only once both of its files are in place, so a killed
run resumes from the last complete shard. Readers validate each shard through a memory map and
then read single pairs at their file offsets: training RAM does not grow with the number of pairs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lines_model import atomic
from lines_model.errors import ConfigError, PairsError
from lines_model.hashing import hash_files

MANIFEST = "manifest.json"
_SHARD_FILE = re.compile(r"^shard-(\d{5})\.(noise\.npy|clean\.npy|sha256)$")
FORMAT_VERSION = 2  # 2: the teacher's precision is recorded


@dataclass
class Manifest:
    teacher: str  # teacher.model as given
    teacher_sha256: str  # content hash of the teacher's config + weights + scheduler config
    sampler: str
    steps: int
    order: int
    seed: int
    stream: int
    count: int  # pairs this folder must hold when complete
    shard_size: int
    sample_shape: list[int]
    # What the teacher ran at ("fp32" | "bf16" | "fp16"; runtime.inference_precision): part of the
    # shards' identity, so a resume never mixes precisions, and the evaluation's teacher row runs at it.
    precision: str
    lambda_min: float | None = None  # DPM-Solver++'s log-SNR grid start (samplers.log_snr_grid)
    shards: dict[str, str] = field(default_factory=dict)  # shard file stem -> sha256 of its two files
    # The params values the folder was made from (provenance.made_from), which its readers check
    # against theirs; None where a library caller made the folder without params.
    made_from: dict | None = None
    format: int = FORMAT_VERSION

    def identity(self) -> dict:
        """Everything that determines the bytes of a shard (not the count, the progress or the record)."""
        d = asdict(self)
        for k in ("count", "shards", "made_from"):
            d.pop(k)
        return d

    @property
    def num_shards(self) -> int:
        return -(-self.count // self.shard_size)

    def shard_range(self, j: int) -> range:
        return range(j * self.shard_size, min((j + 1) * self.shard_size, self.count))


def shard_name(j: int) -> str:
    return f"shard-{j:05d}"


def read_manifest(folder: Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise PairsError(f"{path}: missing; run the teacher_pairs stage first")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        if data.get("format") != FORMAT_VERSION:
            raise TypeError(
                f"format {data.get('format')!r}, this code reads {FORMAT_VERSION}; rerun the teacher_pairs stage"
            )
        return Manifest(**data)
    except (json.JSONDecodeError, TypeError) as e:
        raise PairsError(f"{path}: not a valid pairs manifest ({e})") from None


def write_manifest(folder: Path, m: Manifest) -> None:
    atomic.write_json(Path(folder) / MANIFEST, asdict(m))


def _files(folder: Path, j: int) -> tuple[Path, Path]:
    return tuple(Path(folder) / f"{shard_name(j)}.{kind}.npy" for kind in ("noise", "clean"))


def _digest_file(folder: Path, j: int) -> Path:
    return Path(folder) / f"{shard_name(j)}.sha256"


def shard_matches(folder: Path, m: Manifest, j: int, digest: str | None) -> bool:
    """Shard j's two files exist, hold its pairs, and hash to `digest`: the one test of a shard,
    against the manifest's hash (a finished folder) or its digest file (one being written)."""
    files = _files(folder, j)
    if digest is None or not all(f.exists() for f in files):
        return False
    try:
        n = np.load(files[0], mmap_mode="r").shape[0]
    except (OSError, ValueError):
        return False
    return n == len(m.shard_range(j)) and hash_files(*files) == digest


def verify_shard(folder: Path, m: Manifest, j: int) -> bool:
    """True when shard j is complete and matches the hash recorded in the manifest."""
    return shard_matches(folder, m, j, m.shards.get(shard_name(j)))


class PairsWriter:
    """The one writer of a pairs folder, shard by shard, resumable, one process or several.

    `start` (one process) keeps the shards of a folder with the same identity and clears any
    other, and writes the manifest without shards: readers see an incomplete folder. `write` puts
    a shard's two files in place atomically and its digest file last, which marks it complete.
    `finish` (one process) lists every shard's digest in the manifest and drops shards past the count.
    """

    def __init__(self, folder: str | Path, manifest: Manifest):
        self.folder, self.manifest = Path(folder), manifest

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            same = read_manifest(self.folder).identity() == self.manifest.identity()
        except PairsError:
            same = False
        if not same:  # another teacher, sampler, seed or precision: nothing here can be reused
            for p in self.folder.iterdir():
                if _SHARD_FILE.match(p.name) or p.name == MANIFEST:
                    p.unlink()
        write_manifest(self.folder, dataclasses.replace(self.manifest, shards={}))

    def complete(self, j: int) -> bool:
        side = _digest_file(self.folder, j)
        return shard_matches(self.folder, self.manifest, j, side.read_text().strip() if side.exists() else None)

    def write(self, j: int, noise: torch.Tensor, clean: torch.Tensor) -> None:
        for path, t in zip(_files(self.folder, j), (noise, clean)):
            with atomic.atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, t.detach().cpu().float().numpy().astype(np.float32, copy=False))
        atomic.write_text(_digest_file(self.folder, j), hash_files(*_files(self.folder, j)) + "\n")

    def finish(self) -> Manifest:
        m = self.manifest
        missing = [j for j in range(m.num_shards) if not _digest_file(self.folder, j).exists()]
        if missing:
            raise PairsError(f"{self.folder}: shards {missing[:5]} were not produced")
        m.shards = {shard_name(j): _digest_file(self.folder, j).read_text().strip() for j in range(m.num_shards)}
        for p in self.folder.iterdir():  # shards past the count (a lowered count) are stale
            hit = _SHARD_FILE.match(p.name)
            if hit and int(hit.group(1)) >= m.num_shards:
                p.unlink()
        write_manifest(self.folder, m)
        return m


class PairStore(torch.utils.data.Dataset):
    """Memory-mapped read access to a complete pairs folder; items are (noise, clean) float32 tensors.

    `indices` restricts the view to a subset (positions into the full pair list).
    """

    def __init__(self, folder: str | Path, indices: np.ndarray | None = None, verify: bool = False):
        self.folder = Path(folder)
        self.manifest = m = read_manifest(self.folder)
        missing = [shard_name(j) for j in range(m.num_shards) if shard_name(j) not in m.shards]
        if missing:
            raise PairsError(
                f"{self.folder / MANIFEST}: incomplete ({len(missing)} of {m.num_shards} shards missing, "
                f"first {missing[0]}); "
                "rerun the teacher_pairs stage to finish it"
            )
        self._noise, self._clean, self._starts = [], [], []
        shape = tuple(m.sample_shape)
        for j in range(m.num_shards):
            if verify and not verify_shard(self.folder, m, j):
                raise PairsError(f"{self.folder / shard_name(j)}.*.npy: contents do not match the hash in {MANIFEST}")
            n = len(m.shard_range(j))
            arrays = []
            for kind in ("noise", "clean"):
                p = self.folder / f"{shard_name(j)}.{kind}.npy"
                try:
                    a = np.load(p, mmap_mode="r")
                except (OSError, ValueError) as e:
                    raise PairsError(
                        f"{p}: unreadable or truncated shard ({e}); delete it and rerun teacher_pairs"
                    ) from None
                if a.shape != (n, *shape) or a.dtype != np.float32:
                    raise PairsError(f"{p}: expected float32 {(n, *shape)}, found {a.dtype} {a.shape}")
                # Items are read with pread at the array's data offset rather than through the
                # mapping: mapped file pages count as resident memory, and on this kernel one
                # fault maps a whole large folio of page cache, so shuffled reads through a
                # mapping grew RSS by ~700 MB per 256 items (benchmarks/README.md).
                arrays.append((os.open(p, os.O_RDONLY), int(a.offset)))
                del a
            self._noise.append(arrays[0])
            self._clean.append(arrays[1])
            self._starts.append(j * m.shard_size)
        self._shape = shape
        self._item_bytes = int(np.prod(shape)) * 4
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        if self.indices is not None and len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= m.count):
            raise PairsError(f"{self.folder}: subset index out of range [0, {m.count})")

    def __len__(self) -> int:
        return self.manifest.count if self.indices is None else len(self.indices)

    def _locate(self, i: int) -> tuple[int, int]:
        j = bisect_right(self._starts, i) - 1
        return j, i - self._starts[j]

    def _read(self, src: tuple[int, int], r: int) -> torch.Tensor:
        fd, offset = src
        nbytes = self._item_bytes
        buf = os.pread(fd, nbytes, offset + r * nbytes)
        if len(buf) != nbytes:
            raise PairsError(f"{self.folder}: short read in a shard (file changed while training?)")
        return torch.frombuffer(bytearray(buf), dtype=torch.float32).view(self._shape)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(k if self.indices is None else self.indices[k])
        j, r = self._locate(i)
        return self._read(self._noise[j], r), self._read(self._clean[j], r)

    def close(self) -> None:
        # getattr: __del__ also runs on a store whose __init__ refused the folder before opening anything
        for fd, _ in (*getattr(self, "_noise", ()), *getattr(self, "_clean", ())):
            try:
                os.close(fd)
            except OSError:
                pass
        self._noise, self._clean = [], []

    def __del__(self):
        self.close()

    def take(self, positions) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of pairs at `positions` (of this view), as stacked tensors."""
        items = [self[int(k)] for k in positions]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    def split(self, count: int, reference: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noise, teacher images) of the first `count` pairs and the next `reference` teacher images."""
        if count + reference > len(self):
            raise ConfigError(
                f"evaluate.count + evaluate.reference ({count} + {reference}) exceeds the {len(self)} pairs "
                f"in {self.folder}"
            )
        noise, clean = self.take(range(count))
        return noise, clean, self.take(range(count, count + reference))[1]


class CleanImages(torch.utils.data.Dataset):
    """The teacher's images C of the pairs alone, as a data set x (methods that draw their own noise)."""

    def __init__(self, store: PairStore):
        self.store = store

    def __len__(self):
        return len(self.store)

    def __getitem__(self, i):
        _, clean = self.store[i]
        return clean, clean  # (unused, x): the loss draws its own noise
