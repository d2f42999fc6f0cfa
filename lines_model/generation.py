"""Generate (noise, teacher image) pairs into a shard folder, resumably and across processes.

Shard j is produced by process j % world_size, in fixed batches, from noise seeded by
(seed, stream, index): the result does not depend on how many processes ran or whether
the run was interrupted and resumed. With a scratch folder, shards are made there, in a folder
named after what determines their bytes, and moved into the output only once all are complete:
a killed run resumes from the scratch folder, and the output is never a resumable half.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from lines_model import atomic, noise, pairs, progress, runtime
from lines_model.samplers import teacher_sampler
from lines_model.teachers import Teacher
from lines_model.provenance import scratch_key

_SHARD_FILE = re.compile(r"^shard-\d{5}\.(noise\.npy|clean\.npy|sha256)$")


def _digest_file(folder: Path, j: int) -> Path:
    return folder / f"{pairs.shard_name(j)}.sha256"


def shard_done(folder: Path, m: pairs.Manifest, j: int) -> bool:
    """Shard j is complete: both files, the right length, and its digest file agrees."""
    side = _digest_file(folder, j)
    files = [folder / f"{pairs.shard_name(j)}.{k}.npy" for k in ("noise", "clean")]
    if not side.exists() or not all(f.exists() for f in files):
        return False
    try:
        n = np.load(files[0], mmap_mode="r").shape[0]
    except (OSError, ValueError):
        return False
    if n != len(m.shard_range(j)):
        return False
    return pairs.hash_files(*files) == side.read_text().strip()


def _clear(folder: Path) -> None:
    for p in folder.iterdir():
        if _SHARD_FILE.match(p.name) or p.name == pairs.MANIFEST:
            p.unlink()


def generate(
    teacher: Teacher,
    out: str | Path,
    *,
    count: int,
    stream: int,
    sampler: str,
    steps: int,
    order: int,
    seed: int,
    lambda_min: float | None = None,
    batch_size: int,
    shard_size: int,
    rank: int = 0,
    world_size: int = 1,
    barrier=lambda: None,
    precision: str = "fp32",
    desc: str = "pairs",
    scratch_dir: str | Path | None = None,
) -> pairs.Manifest:
    """Make `count` pairs in `out` (in place, or through `scratch_dir`; see the module docstring),
    the teacher running at `precision` ("fp32" | "bf16" | "fp16", recorded in the manifest)."""
    want = pairs.Manifest(
        teacher=teacher.source,
        teacher_sha256=teacher.sha256,
        sampler=sampler,
        steps=steps,
        precision=precision,
        order=order if sampler == "dpmsolver++" else 0,
        lambda_min=lambda_min if sampler == "dpmsolver++" else None,
        seed=seed,
        stream=stream,
        count=count,
        shard_size=shard_size,
        sample_shape=list(teacher.sample_shape),
    )
    final = Path(out)
    key = scratch_key(want.identity(), entry=__file__, precision=precision)
    out = final if scratch_dir is None else Path(scratch_dir) / f"{final.name}-{key}"
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        try:
            old = pairs.read_manifest(out)
            same = old.identity() == want.identity()
        except pairs.PairsError:
            same = False
        if not same:  # another teacher, sampler or seed: nothing here can be reused
            _clear(out)
        pairs.write_manifest(out, want)  # no shards listed: readers see an incomplete folder
    barrier()

    sample = teacher_sampler(sampler)
    autocast = runtime.autocast_at(next(teacher.unet.parameters()).device, precision)
    mine = [j for j in range(want.num_shards) if j % world_size == rank]
    todo = [j for j in mine if not shard_done(out, want, j)]
    total = sum(len(want.shard_range(j)) for j in todo)
    bar = progress.bar(total=total, desc=desc if world_size == 1 else f"{desc} [rank {rank}]", unit="pair", position=rank)
    for j in todo:
        idx = list(want.shard_range(j))
        chunks_n, chunks_c = [], []
        for b in range(0, len(idx), batch_size):
            n = noise.noise_for(idx[b : b + batch_size], teacher.sample_shape, seed, stream)
            with autocast():
                c = sample(teacher.unet, teacher.scheduler_config, n, steps, order=order, lambda_min=lambda_min)
            chunks_n.append(n)
            chunks_c.append(c.float().clamp(-1, 1).cpu())
            bar.update(len(n))
        digest = pairs.write_shard(out, j, torch.cat(chunks_n), torch.cat(chunks_c))
        atomic.write_text(_digest_file(out, j), digest + "\n")  # written last: marks the shard complete
    bar.close()
    barrier()

    if rank == 0:
        missing = [j for j in range(want.num_shards) if not _digest_file(out, j).exists()]
        if missing:
            raise pairs.PairsError(f"{out}: shards {missing[:5]} were not produced")
        want.shards = {pairs.shard_name(j): _digest_file(out, j).read_text().strip() for j in range(want.num_shards)}
        # Shards beyond the count (the count was lowered) are stale: remove them.
        for p in out.iterdir():
            m = re.match(r"^shard-(\d{5})\.", p.name)
            if m and int(m.group(1)) >= want.num_shards:
                p.unlink()
        pairs.write_manifest(out, want)
        if out != final:
            if final.exists():
                shutil.rmtree(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(out, final)
    barrier()
    return want
