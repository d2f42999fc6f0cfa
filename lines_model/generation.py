"""Generate (noise, teacher image) pairs into a shard folder, resumably and across processes.

Shard j is produced by process j % world_size, in fixed batches, from noise seeded by
(seed, stream, index): the result does not depend on how many processes ran or whether
the run was interrupted and resumed. With a scratch folder, shards are made there, in a folder
named after what determines their bytes, and moved into the output only once all are complete:
a killed run resumes from the scratch folder, and the output is never a resumable half.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from lines_model import noise, pairs, progress, runtime
from lines_model.provenance import scratch_key
from lines_model.samplers import teacher_sampler
from lines_model.teachers import Teacher


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
    made_from: dict | None = None,
) -> pairs.Manifest:
    """Make `count` pairs in `out` (in place, or through `scratch_dir`; see the module docstring),
    the teacher running at `precision` ("fp32" | "bf16" | "fp16", recorded in the manifest), and
    `made_from` (provenance.made_from) recorded in the manifest."""
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
        made_from=made_from,
    )
    final = Path(out)
    key = scratch_key(want.identity(), entry=__file__, precision=precision)
    out = final if scratch_dir is None else Path(scratch_dir) / f"{final.name}-{key}"
    writer = pairs.PairsWriter(out, want)
    if rank == 0:
        writer.start()
    barrier()

    sample = teacher_sampler(sampler)
    autocast = runtime.autocast_at(next(teacher.unet.parameters()).device, precision)
    mine = [j for j in range(want.num_shards) if j % world_size == rank]
    todo = [j for j in mine if not writer.complete(j)]
    total = sum(len(want.shard_range(j)) for j in todo)
    bar = progress.bar(
        total=total, desc=desc if world_size == 1 else f"{desc} [rank {rank}]", unit="pair", position=rank
    )
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
        writer.write(j, torch.cat(chunks_n), torch.cat(chunks_c))
    bar.close()
    barrier()

    if rank == 0:
        writer.finish()
        if out != final:
            if final.exists():
                shutil.rmtree(final)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(out, final)
    barrier()
    return want
