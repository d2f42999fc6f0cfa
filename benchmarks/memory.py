"""Section 2: training memory stays bounded over 250,000 pairs, against the original's single .pt file.

Synthetic CIFAR-sized pairs are written in the package's shard format; each measurement then runs
in a fresh child process (`run.py --child train-mem|build-pt|load-pt`), so that its peak RSS is
its own: the larger of the child's VmHWM and the parent's sampling of the child's RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

from benchmarks.common import ROOT, log, reset_peak_rss, run_child, vm_hwm_mb, vm_rss_mb

# --------------------------------------------------------------------------------------------
# Children (run in fresh processes)
# --------------------------------------------------------------------------------------------


def child_train_mem(argv: list[str]) -> None:
    """Open a PairStore, iterate one shuffled epoch with a DataLoader, train a tiny student on the first batches."""
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--train-steps", type=int, required=True)
    p.add_argument("--microbatch", type=int, required=True)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from lines_model.config import load_params
    from lines_model.losses import LinesLoss
    from lines_model.pairs import PairStore
    from lines_model.students import init_student
    from lines_model.training import EpochSampler

    params = load_params(ROOT / "params.yaml")
    # The params.yaml student (its t_scale included), shrunk to a tiny random-init UNet: the point is the data path.
    scfg = dataclasses.replace(
        params.student,
        init="random",
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    loss_fn = LinesLoss(params.train_lines.loss, params.train_lines.t_dist)
    store = PairStore(a.pairs)
    torch.manual_seed(0)
    model = init_student(scfg, tuple(store.manifest.sample_shape))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(
        store, batch_size=a.batch, sampler=EpochSampler(len(store), seed=0), num_workers=0
    )
    rss_setup = vm_rss_mb()
    items = batches = 0
    train_s = 0.0
    checksum = 0.0
    rss_after_train = peak_train = None
    reset = False
    t0 = time.perf_counter()
    for noise_b, clean_b in loader:
        if batches < a.train_steps:
            # One optimizer step on the whole batch, its gradient accumulated over micro-batches: the
            # same update, with CPU activation memory of a micro-batch (on a GPU they are not in RSS).
            # Each micro-batch's mean loss is weighted by its share of the batch: the gradient of the batch mean.
            ts = time.perf_counter()
            g = torch.Generator().manual_seed(batches)
            for i in range(0, len(noise_b), a.microbatch):
                sl = slice(i, i + a.microbatch)
                share = len(noise_b[sl]) / len(noise_b)
                (loss_fn(model, noise_b[sl], clean_b[sl], g) * share).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            train_s += time.perf_counter() - ts
            if batches + 1 == a.train_steps:
                rss_after_train, peak_train = vm_rss_mb(), vm_hwm_mb()
                reset = reset_peak_rss()
        checksum += float(clean_b[:, 0, 0, 0].sum())  # touch the data
        items += len(noise_b)
        batches += 1
    epoch_s = time.perf_counter() - t0
    hwm = vm_hwm_mb()  # since the reset (when it worked): the peak of the data-only rest of the epoch
    Path(a.result).write_text(
        json.dumps(
            {
                "peak_rss_mb": max(hwm, peak_train or 0.0),
                "peak_rss_train_steps_mb": peak_train,
                "rss_after_setup_mb": rss_setup,
                "rss_after_train_steps_mb": rss_after_train,
                "epoch_rest_peak_rss_mb": hwm if reset else None,
                "rss_after_epoch_mb": vm_rss_mb(),
                "items": items,
                "batches": batches,
                "epoch_s": epoch_s,
                "train_steps_s": train_s,
                "data_only_epoch_s": epoch_s - train_s,
                "threads": torch.get_num_threads(),
                "checksum": checksum,
            }
        )
    )


def child_build_pt(argv: list[str]) -> None:
    """The original's data file: every pair in two preallocated float32 tensors, one torch.save."""
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", required=True)
    p.add_argument("--pt", required=True)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    import numpy as np
    import torch

    from lines_model import pairs

    m = pairs.read_manifest(Path(a.pairs))
    shape = (m.count, *m.sample_shape)
    t0 = time.perf_counter()
    noise_t, clean_t = torch.empty(shape), torch.empty(shape)
    for j in range(m.num_shards):
        r = m.shard_range(j)
        for kind, dst in (("noise", noise_t), ("clean", clean_t)):
            src = np.load(Path(a.pairs) / f"{pairs.shard_name(j)}.{kind}.npy", mmap_mode="r")
            dst[r.start : r.stop].numpy()[...] = src
            del src
    fill_s = time.perf_counter() - t0
    tmp = Path(a.pt + ".part")
    torch.save({"noise": noise_t, "clean": clean_t}, tmp)
    os.replace(tmp, a.pt)
    Path(a.result).write_text(
        json.dumps(
            {
                "peak_rss_mb": vm_hwm_mb(),
                "fill_s": fill_s,
                "save_s": time.perf_counter() - t0 - fill_s,
                "bytes": os.path.getsize(a.pt),
            }
        )
    )


def child_load_pt(argv: list[str]) -> None:
    """The original's way of reading its pairs: torch.load of the whole file."""
    p = argparse.ArgumentParser()
    p.add_argument("--pt", required=True)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    import torch

    rss_before = vm_rss_mb()
    t0 = time.perf_counter()
    d = torch.load(a.pt, weights_only=True)
    load_s = time.perf_counter() - t0
    n = int(d["noise"].shape[0])
    checksum = float(d["clean"][:: max(1, n // 1000), 0, 0, 0].sum())
    Path(a.result).write_text(
        json.dumps(
            {
                "peak_rss_mb": vm_hwm_mb(),
                "rss_before_load_mb": rss_before,
                "load_s": load_s,
                "items": n,
                "checksum": checksum,
            }
        )
    )


CHILDREN = {"train-mem": child_train_mem, "build-pt": child_build_pt, "load-pt": child_load_pt}

# --------------------------------------------------------------------------------------------
# The section (in the parent)
# --------------------------------------------------------------------------------------------


def write_synthetic_pairs(folder: Path, count: int, shard: int, shape: tuple[int, ...], progress: bool) -> None:
    """`count` random pairs in the shard format, generated shard by shard (writer memory: one shard)."""
    import torch
    from tqdm.auto import tqdm

    from lines_model import pairs

    m = pairs.Manifest(
        teacher="synthetic",
        teacher_sha256="none",
        sampler="synthetic",
        steps=0,
        precision="fp32",
        order=0,
        seed=0,
        stream=0,
        count=count,
        shard_size=shard,
        sample_shape=list(shape),
    )
    writer = pairs.PairsWriter(folder, m)
    writer.start()
    for j in tqdm(range(m.num_shards), desc="synthetic shards", unit="shard", disable=not progress):
        n = len(m.shard_range(j))
        g = torch.Generator().manual_seed(j)
        noise = torch.randn((n, *shape), generator=g)
        clean = torch.rand((n, *shape), generator=g).mul_(2).sub_(1)
        writer.write(j, noise, clean)
        del noise, clean
    writer.finish()


def bench_memory(work: Path, S: dict, threads: int, progress: bool, r: dict | None = None, save=lambda: None) -> dict:
    """Section 2: fills `r` (a new dict by default) measurement by measurement, calling `save()` after
    each, and returns it. Everything it writes lives in `work`/memory, removed at the end, error or not."""
    mem = work / "memory"
    mem.mkdir(parents=True, exist_ok=True)
    try:
        return _bench_memory(mem, S, threads, progress, {} if r is None else r, save)
    finally:
        shutil.rmtree(mem, ignore_errors=True)


def _bench_memory(work: Path, S: dict, threads: int, progress: bool, r: dict, save) -> dict:
    import psutil

    count, shape = S["mem_pairs"], S["mem_shape"]
    pair_bytes = 2 * 4 * shape[0] * shape[1] * shape[2]  # noise + clean, float32
    need = 2 * count * pair_bytes  # the shards and the .pt file
    free = shutil.disk_usage(work).free
    if free < need * 1.1:
        raise RuntimeError(f"{work}: {free / 1e9:.1f} GB free, the memory benchmark needs {need * 1.1 / 1e9:.1f} GB")
    r.update({"memory_pairs": count, "memory_sample_shape": list(shape), "memory_shard_size": S["mem_shard"]})
    folder = work / "synthetic-pairs"
    log(f"memory: writing {count:,} synthetic pairs {shape} in shards of {S['mem_shard']:,}")
    t0 = time.perf_counter()
    write_synthetic_pairs(folder, count, S["mem_shard"], shape, progress)
    r["memory_write_s"] = time.perf_counter() - t0
    disk = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    r["bytes_per_pair"] = disk / count
    r["memory_disk_gb"] = disk / 1e9
    save()

    log(
        f"memory: child A: PairStore + DataLoader epoch (batch {S['mem_batch']}, shuffled) + "
        f"{S['mem_train_steps']} training steps"
    )
    a = run_child(
        [
            "train-mem",
            "--pairs",
            str(folder),
            "--batch",
            str(S["mem_batch"]),
            "--train-steps",
            str(S["mem_train_steps"]),
            "--microbatch",
            str(S["mem_microbatch"]),
            "--threads",
            str(threads),
        ],
        work / "train-mem.json",
    )
    if a["items"] != count:
        raise RuntimeError(f"child A saw {a['items']} pairs, expected {count}")
    r["train_peak_rss_mb_250k"] = max(a["peak_rss_mb"], a["polled_peak_rss_mb"])
    r["train_peak_rss_mb_250k_vmhwm"] = a["peak_rss_mb"]
    r["train_peak_rss_mb_250k_polled"] = a["polled_peak_rss_mb"]
    r["train_rss_after_setup_mb"] = a["rss_after_setup_mb"]
    r["train_rss_after_train_steps_mb"] = a["rss_after_train_steps_mb"]
    r["train_epoch_rest_peak_rss_mb"] = a["epoch_rest_peak_rss_mb"]
    if a["epoch_rest_peak_rss_mb"] is not None:  # RSS growth over the data-only rest of the epoch
        r["train_epoch_rss_growth_mb"] = a["epoch_rest_peak_rss_mb"] - a["rss_after_train_steps_mb"]
    r["train_steps"] = S["mem_train_steps"]
    r["train_batch"] = S["mem_batch"]
    r["train_microbatch"] = S["mem_microbatch"]
    r["train_epoch_s_250k"] = a["epoch_s"]
    r["train_epoch_data_only_s_250k"] = a["data_only_epoch_s"]
    r["train_epoch_pairs_per_s"] = count / a["data_only_epoch_s"]
    save()

    avail = psutil.virtual_memory().available
    if avail < need / 2 * 1.25:
        raise RuntimeError(
            f"{avail / 1e9:.1f} GB of RAM available; building the original's .pt file needs "
            f"{need / 2 * 1.25 / 1e9:.1f} GB"
        )
    pt = work / "pairs.pt"
    log("memory: building the original's single .pt file (child)")
    b = run_child(["build-pt", "--pairs", str(folder), "--pt", str(pt)], work / "build-pt.json")
    r["original_build_rss_mb_250k"] = max(b["peak_rss_mb"], b["polled_peak_rss_mb"])
    r["original_pt_bytes_per_pair"] = b["bytes"] / count
    save()
    log("memory: child B: torch.load(weights_only=True) of the .pt file")
    c = run_child(["load-pt", "--pt", str(pt)], work / "load-pt.json")
    if c["items"] != count:
        raise RuntimeError(f"child B loaded {c['items']} pairs, expected {count}")
    r["original_load_rss_mb_250k"] = max(c["peak_rss_mb"], c["polled_peak_rss_mb"])
    r["original_load_rss_mb_250k_vmhwm"] = c["peak_rss_mb"]
    r["original_load_s_250k"] = c["load_s"]
    r["train_rss_ratio_original_over_ours"] = r["original_load_rss_mb_250k"] / r["train_peak_rss_mb_250k"]
    save()
    return r
