"""Smoke tests of benchmarks/run.py at toy sizes: its code paths run and write the keys the README lists.

The whole `--quick` run (about a minute: it starts torch.distributed.run and four fresh children) is
left to `python benchmarks/run.py --quick`; here the memory section runs at 600 pairs and the GPU
section as a CPU dry run, so that the GPU code is exercised on machines without one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_memory_section_tiny(bench, tmp_path):
    S = dict(bench.QUICK, mem_pairs=600, mem_shard=200, mem_batch=64, mem_microbatch=32, mem_train_steps=1)
    r = bench.bench_memory(tmp_path, S, threads=1, progress=False)
    for key in ("train_peak_rss_mb_250k", "original_load_rss_mb_250k", "bytes_per_pair", "train_epoch_s_250k"):
        assert isinstance(r[key], float) and r[key] > 0, key
    # 2 float32 arrays of 3x32x32 per pair, plus the small .npy headers and the manifest.
    assert 24576 <= r["bytes_per_pair"] < 24576 * 1.05
    assert not any(tmp_path.iterdir()), "the memory section left files behind"


def test_gpu_section_dry_run_on_cpu(bench):
    torch.set_num_threads(1)
    S = dict(bench.QUICK, gpu_batch=2, gpu_small_batch=1, gpu_ddim_steps=2, gpu_dpm_steps=2, gpu_train_steps=1)
    saved = []
    r = bench.bench_gpu(S, device="cpu", save=lambda: saved.append(1))
    assert r["student_params"] > 9e6 and r["teacher_params"] > 35e6
    keys = ("pairs_per_s_original_ddim2_fp32", "pairs_per_s_ddim2", "pairs_per_s_dpmsolver2", "pairs_per_s_generate",
            "pairs_speedup_vs_original", "train_samples_per_s", "onestep_speedup_b1_vs_ddim2", "onestep_speedup_b1_vs_dpmsolver2")
    for key in keys:
        assert r[key] > 0, key
    assert len(saved) >= 4, "results are saved measurement by measurement"


def test_markdown_table(bench):
    table = bench.markdown({"a": 1.5, "machine": {"cpu_count": 2}, "gpu": None})
    assert "| a | 1.5 |" in table and "| machine.cpu_count | 2 |" in table and "| gpu | None |" in table


def test_cpu_runs_keep_the_last_gpu_figures(bench, tmp_path):
    out = tmp_path / "results.json"
    assert bench._previous_gpu(out) is None  # no file yet
    out.write_text('{"gpu": {"device": "NVIDIA H200", "date": "2026-01-01", "pairs_per_s_generate": 297.0}}')
    assert bench._previous_gpu(out) == {"device": "NVIDIA H200", "date": "2026-01-01", "pairs_per_s_generate": 297.0}
    out.write_text('{"gpu": {"device": "cpu (dry run)"}}')  # numbers of a CPU dry run are never carried over
    assert bench._previous_gpu(out) is None
    out.write_text('{"gpu": null}')
    assert bench._previous_gpu(out) is None
    out.write_text("{not json")
    assert bench._previous_gpu(out) is None
