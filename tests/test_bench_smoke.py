"""Smoke tests of the benchmarks (benchmarks/run.py and its section modules) at toy sizes: their code
paths run, write the keys the README lists, label each measurement with the batch it used, and
derive their ratios from the numbers they report.

The whole `--quick` run (about a minute: it starts torch.distributed.run and four fresh children) is
left to `python benchmarks/run.py --quick`; here the memory section runs at 600 pairs, the pairs
section's calibration and the one-step section on the tiny random teacher, and the GPU section and
the GPU probe (benchmarks/gpu_probe.py) as CPU dry runs, so that the GPU code is exercised on
machines without one; the GPU pipeline's full-run estimate is checked on constructed timings, and its
50k evaluation runs as a CPU dry run. They take about a minute, so `make test` leaves them out and
`make bench-smoke` (and CI) runs them.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `benchmarks` and `tools` import from the repository root; appended, so
    sys.path.append(str(ROOT))  # that it does not change where lines_model is imported from

from benchmarks import common, memory, run, sizes  # noqa: E402

pytestmark = pytest.mark.bench_smoke


def test_memory_section_tiny(tmp_path):
    S = dict(sizes.QUICK, mem_pairs=600, mem_shard=200, mem_batch=64, mem_microbatch=32, mem_train_steps=1)
    saved = []
    r = memory.bench_memory(tmp_path, S, threads=1, progress=False, save=lambda: saved.append(1))
    for key in ("train_peak_rss_mb_250k", "original_load_rss_mb_250k", "bytes_per_pair", "train_epoch_s_250k"):
        assert isinstance(r[key], float) and r[key] > 0, key
    assert r["memory_pairs"] == 600 and r["train_batch"] == 64 and r["memory_shard_size"] == 200
    # 2 float32 arrays of 3x32x32 per pair, plus the small .npy headers and the manifest.
    assert 24576 <= r["bytes_per_pair"] < 24576 * 1.05
    assert r["train_rss_ratio_original_over_ours"] == r["original_load_rss_mb_250k"] / r["train_peak_rss_mb_250k"]
    assert r["train_epoch_pairs_per_s"] == 600 / r["train_epoch_data_only_s_250k"]
    assert len(saved) >= 4, "results are saved measurement by measurement"
    assert not any(tmp_path.iterdir()), "the memory section left files behind"


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    from lines_model.teachers import load_teacher

    return load_teacher(str(tiny_teacher))


def test_pairs_calibration_picks_a_candidate_meeting_its_target(teacher):
    from benchmarks.original import original_loop
    from benchmarks.pairs import calibrate
    from lines_model import noise as noise_mod
    from lines_model.samplers import dpmsolver_pp

    torch.set_num_threads(1)
    S = dict(sizes.QUICK, candidate_steps=(2, 4, 8, 16), candidate_count=4)
    noise = noise_mod.noise_for(range(6), teacher.sample_shape, common.BENCH_SEED, common.BENCH_STREAM)
    unet, cfg = teacher.unet, teacher.scheduler_config
    ref = dpmsolver_pp(unet, cfg, noise, 60)
    orig = original_loop(unet, cfg, noise, 20, 3)
    r = calibrate(unet, cfg, noise, ref, orig, S, -5.0)
    tried = [(c["order"], c["steps"]) for c in r["pairs_candidates"]]
    assert tried == [(o, s) for s in (2, 4, 8, 16) for o in (2, 3)][: len(tried)]  # cheapest first, order 2 first
    assert r["pairs_candidates_psnr"] == {f"order{c['order']}_{c['steps']}": c["psnr_db"] for c in r["pairs_candidates"]}
    assert r["pairs_candidates_count"] == 4
    assert r["pairs_equal_fidelity"], r  # DDIM-20 is reached well within 16 DPM-Solver++ steps
    chosen = r["pairs_candidates"][-1]  # the search stops at the first candidate that meets the target
    assert (r["pairs_order"], r["pairs_steps"]) == (chosen["order"], chosen["steps"])
    assert chosen["psnr_db"] >= r["pairs_candidates_target_psnr"]
    assert all(c["psnr_db"] < r["pairs_candidates_target_psnr"] for c in r["pairs_candidates"][:-1])
    assert r["pairs_sampler"] == f"dpmsolver++ order {chosen['order']}, {chosen['steps']} steps, lambda_min -5.0"


def test_pairs_original_and_ours_are_timed_in_alternating_rounds(teacher):
    from benchmarks.calibration import median_psnr
    from benchmarks.original import original_loop
    from benchmarks.pairs import time_against_original
    from lines_model import noise as noise_mod
    from lines_model.samplers import dpmsolver_pp

    torch.set_num_threads(1)
    S = dict(sizes.QUICK, original_steps=3, original_batch=4, pairs_rounds=2)
    noise = noise_mod.noise_for(range(4), teacher.sample_shape, common.BENCH_SEED, common.BENCH_STREAM)
    unet, cfg = teacher.unet, teacher.scheduler_config
    ref = dpmsolver_pp(unet, cfg, noise, 8)
    r = {"pairs_steps": 2, "pairs_order": 2}
    ours = time_against_original(unet, cfg, noise, ref, S, r, -5.0, threads=1)
    assert torch.equal(ours, dpmsolver_pp(unet, cfg, noise, 2, order=2, lambda_min=-5.0))  # its last round's images
    assert r["psnr_vs_reference"] == median_psnr(ours, ref)
    assert r["psnr_vs_reference_original"] == median_psnr(original_loop(unet, cfg, noise, 3, 4), ref)
    assert r["pairs_rounds"] == 2 and r["pairs_per_s"] > 0 and r["pairs_per_s_original"] > 0
    assert r["pairs_speedup"] > 0 and r["pairs_speedup_iqr"] >= 0
    assert isinstance(r["timing_reliable"], bool) and r["timing_reliable"] is not bool(r.get("timing_warnings"))


def test_onestep_keys_carry_the_batch_sizes_used(teacher):
    from benchmarks.onestep import bench_onestep
    from lines_model.config import load_params

    torch.set_num_threads(1)
    S = dict(sizes.QUICK, onestep_batches=(3, 1), onestep_repeats=1)
    saved = []
    r = bench_onestep(teacher, S, save=lambda: saved.append(1))
    assert r["onestep_batches"] == [1, 3] and r["onestep_ceiling_batch"] == 3
    assert not any(k.endswith(("_b16", "_b256")) for k in r), "keys must name the batches measured, here 1 and 3"
    for b in (1, 3):
        speedup = r[f"onestep_teacher_ms_per_image_b{b}"] / r[f"onestep_student_ms_per_image_b{b}"]
        assert r[f"onestep_speedup_b{b}"] == speedup > 0
    # onestep_repeats=1 is rounded up to one round per entry, so each entry takes each position once
    assert r["onestep_rounds"] == 2
    for b in (1, 3):  # each ratio's spread over its rounds, and the run's verdict on them
        assert r[f"onestep_speedup_iqr_b{b}"] >= 0
    assert r["onestep_speedup_ceiling_iqr_b3"] >= 0
    assert isinstance(r["timing_reliable"], bool)
    assert r["timing_reliable"] is not bool(r.get("timing_warnings"))
    assert all(w.startswith("warning: one-step") and "\n" not in w for w in r.get("timing_warnings", []))
    nfe = load_params(ROOT / "params.yaml").pairs.steps
    assert r["onestep_speedup_ceiling_b3"] == nfe * r["onestep_teacher_call_ms_b3"] / r["onestep_student_call_ms_b3"]
    assert len(saved) == 3, "saved after each batch and after the ceiling"


def test_gpu_section_dry_run_on_cpu():
    from benchmarks.gpu import bench_gpu

    torch.set_num_threads(1)
    S = dict(sizes.QUICK, gpu_batch=2, gpu_small_batch=1, gpu_ddim_steps=2, gpu_dpm_steps=2, gpu_train_steps=1)
    saved = []
    r = bench_gpu(S, device="cpu", save=lambda: saved.append(1))
    assert r["device"] == "cpu (dry run)" and r["batch"] == 2 and r["small_batch"] == 1
    assert 9e6 < r["student_params"] < 11e6 and r["teacher_params"] == 35_746_307  # google/ddpm-cifar10-32's size
    # the small-batch timings are labelled with the batch they ran at (1), the step counts with theirs (2)
    small = ("teacher_original_ddim2_fp32_ms_b1", "teacher_ddim2_ms_b1", "teacher_dpmsolver2_ms_b1", "student_1step_ms_b1")
    for key in ("pairs_per_s_original_ddim2_fp32", "pairs_per_s_ddim2", "pairs_per_s_dpmsolver2", "pairs_per_s_generate",
                "train_samples_per_s", *small):
        assert isinstance(r[key], float) and r[key] > 0, key
    assert not any(k.endswith(("_b16", "_b256")) or "ddim200" in k or "dpmsolver20" in k for k in r)
    assert r["train_steps_timed"] == 2
    # every ratio is the quotient of the fields it comes from
    assert r["pairs_speedup_vs_original"] == r["pairs_per_s_generate"] / r["pairs_per_s_original_ddim2_fp32"]
    student = r["student_1step_ms_b1"]
    assert r["onestep_speedup_b1_vs_ddim2"] == r["teacher_ddim2_ms_b1"] / student
    assert r["onestep_speedup_b1_vs_dpmsolver2"] == r["teacher_dpmsolver2_ms_b1"] / student
    assert r["onestep_speedup_b1_vs_original_ddim2_fp32"] == r["teacher_original_ddim2_fp32_ms_b1"] / student
    assert "pairs_per_s_dpmsolver2_compiled" not in r and "compile_error" not in r  # compilation is CUDA-only
    assert len(saved) >= 4, "results are saved measurement by measurement"


def test_uncertainty_section_tiny(tmp_path):
    from benchmarks import uncertainty

    S = dict(sizes.QUICK, unc_n=240, unc_m=200, unc_d=8, unc_replicates=50)
    saved = []
    r = uncertainty.bench_uncertainty(tmp_path, S, threads=1, r={}, save=lambda: saved.append(1))
    assert (r["n"], r["m"], r["d"], r["replicates"], r["fid_groups"], r["threads"]) == (240, 200, 8, 50, 0, 1)
    assert r["se_over_metrics"] == r["se_s"] / r["metrics_s"]
    assert r["metrics_with_errors_equal"] is True  # the evaluation's call gives the same metrics and errors
    assert set(r["metrics"]) == {"fid", "kid", "precision", "recall"}
    assert r["errors_by_replicates"]["50"] == r["errors"]
    assert set(r["errors_by_replicates"]) == {"25", "50"} and set(r["spread_by_replicates"]) == {"25"}
    assert 0 < r["se_peak_rss_gb"] and 0 < r["metrics_peak_rss_gb"] and 0 < r["metrics_with_errors_peak_rss_gb"]
    assert set(r["se_parts_s"]) == {"ref_ref", "gen_gen", "gen_ref", "fid", "kid_mc"}
    assert saved


def test_merge_replaces_only_the_nested_sections_run(tmp_path, monkeypatch):
    out = tmp_path / "results.json"
    out.write_text('{"complete": true, "pairs_speedup": 3.0, "uncertainty": {"date": "old", "se_s": 1.0}}')

    def fake(work, S, threads, r, save):
        r["se_s"] = 2.0
        save()

    monkeypatch.setattr("benchmarks.uncertainty.bench_uncertainty", fake)
    assert run.main(["--sections", "uncertainty", "--merge", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["complete"] is True and r["pairs_speedup"] == 3.0 and r["uncertainty"]["se_s"] == 2.0
    assert r["uncertainty"]["date"] != "old" and r["uncertainty"]["quick"] is False
    assert run.previous_section(out, "uncertainty") == r["uncertainty"]
    with pytest.raises(SystemExit):
        run.main(["--sections", "pairs", "--merge", "--out", str(out)])  # flat keys: never merged


def test_every_child_is_found_in_its_module():
    from benchmarks import pairs, uncertainty

    assert set(run.CHILD_MODULES) == set(pairs.CHILDREN) | set(memory.CHILDREN) | set(uncertainty.CHILDREN)
    for kind, module in run.CHILD_MODULES.items():
        assert kind in importlib.import_module(module).CHILDREN, kind


def test_markdown_table():
    table = run.markdown({"a": 1.5, "machine": {"cpu_count": 2}, "gpu": None})
    assert "| a | 1.5 |" in table and "| machine.cpu_count | 2 |" in table and "| gpu | None |" in table


def test_cpu_runs_keep_the_last_gpu_figures(tmp_path):
    out = tmp_path / "results.json"
    assert run.previous_gpu(out) is None  # no file yet
    out.write_text('{"gpu": {"device": "NVIDIA H200", "date": "2026-01-01", "pairs_per_s_generate": 297.0}}')
    assert run.previous_gpu(out) == {"device": "NVIDIA H200", "date": "2026-01-01", "pairs_per_s_generate": 297.0}
    out.write_text('{"gpu": {"device": "cpu (dry run)"}}')  # numbers of a CPU dry run are never carried over
    assert run.previous_gpu(out) is None
    out.write_text('{"gpu": null}')
    assert run.previous_gpu(out) is None
    out.write_text("{not json")
    assert run.previous_gpu(out) is None


def test_gpu_probe_dry_run_on_cpu(tmp_path):
    from benchmarks import gpu_probe

    out = tmp_path / "probe.json"
    gpu_probe.main(["--out", str(out), "--tiny", "--budget-s", "120"])
    r = json.loads(out.read_text())
    assert r["batch"] == {"teacher_forward": 2, "student_step": 2, "pd_step": 2}
    assert set(r["per_call"]["teacher_forward"]) == {"fp32", "fp32_strict", "tf32", "bf16"}
    assert set(r["per_call"]["student_step"]) == {"fp32", "fp32_no_ema", "bf16"}
    assert set(r["per_call"]["pd_step"]) == {"fp32", "bf16"}
    for loop, variants in r["per_call"].items():
        assert variants["fp32"]["speedup_over_fp32"] == 1.0  # the reference, over itself round by round
        for v, t in variants.items():
            assert t["ms"] > 0 and t["ms_iqr"] >= 0 and t["speedup_over_fp32"] > 0
            # The rates are the batch over the median call.
            assert r["items_per_s"][loop][v] == pytest.approx(r["batch"][loop] / (t["ms"] / 1e3))
    split = r["kernels"]["teacher_forward/fp32"]
    assert split["total_ms"] == pytest.approx(sum(split["ms"].values()))
    assert split["share"]["conv_and_matmul"] > 0.3  # the UNet's convolutions, found by name
    assert "compile (not in the CPU dry run)" in r["skipped"]


def test_gpu_probe_restores_the_math_flags():
    from benchmarks.gpu_probe import math_mode

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with math_mode("fp32_strict"):
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (False, False)
    with math_mode("tf32"):
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
    with math_mode("fp32"):  # the profile's: PyTorch's defaults, untouched
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


def _constructed_pipeline_run(start=15.0, step_s=0.040, per_epoch=0.8):
    """A pipeline part's figures as if each training stage took start + steps x step + epochs x
    per-epoch remainder (PD's steps twice as long), the other stages 100 s."""
    from benchmarks import cifar

    full = cifar.full_params()
    reduced = cifar.scaled_params(full, 0.01, tiny=False)
    steps = {"reduced": cifar.training_steps(reduced), "full": cifar.training_steps(full)}
    c = {"startup_s": start, "stage_rc": {s: 0 for s in cifar.STAGES}, "stage_s": {s: 100.0 for s in cifar.STAGES},
         "training_steps_reduced": steps["reduced"], "training_steps_full": steps["full"],
         "items_per_s_net": {s: n / (100.0 - start) for s, n in cifar.items(reduced).items()},
         "full_items": cifar.items(full),
         "params_reduced": {k: reduced[k] for k in ("pairs", "subset", "pd", "evaluate")},
         "forward_gflop_per_image": {"teacher": 12.0, "student": 2.0}, "full_params_evaluate": full["evaluate"]}
    for stage, (n, epochs, loop) in steps["reduced"].items():
        c["stage_s"][stage] = start + n * step_s * (2 if loop == "pd_step" else 1) + epochs * per_epoch
        c["items_per_s_net"][stage] = 1.0
    probe = {"per_call": {"student_step": {"fp32": {"ms": 1e3 * step_s}}, "pd_step": {"fp32": {"ms": 2e3 * step_s}},
                          "teacher_forward": {"fp32": {"ms": 100.0}}},
             "items_per_s": {"teacher_forward": {"fp32": 5000.0}}}
    return c, probe, steps


def test_gpu_pipeline_merges_runs_of_different_parts(tmp_path):
    from benchmarks import gpu_estimate

    c, probe, steps = _constructed_pipeline_run()
    a = {"device": "NVIDIA H200", "date": "2026-12-01T10:00:00+00:00", "torch": "2.11", "cuda_tests": {"summary": "4 passed"},
         "cifar_pipeline": c}
    b = {"device": "NVIDIA H200", "date": "2026-12-01T10:12:00+00:00", "torch": "2.11", "make_test": {"summary": "305 passed"},
         "cifar_pipeline": {"forward_gflop_per_image": c["forward_gflop_per_image"], "probe": probe}}
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    into = tmp_path / "results.json"
    into.write_text(json.dumps({"pairs_per_s": 1.0, "gpu": {"earlier": 1}}))
    gpu_estimate.merge([tmp_path / "a.json", tmp_path / "b.json"], into)
    res = json.loads(into.read_text())
    assert res["pairs_per_s"] == 1.0 and res["gpu"]["earlier"] == 1  # every other key kept
    m = res["gpu"]["cifar_pipeline"]
    assert (m["cuda_tests"], m["make_test"], m["date"]) == ("4 passed", "305 passed", b["date"])
    assert m["probe"] == probe and m["stage_s"] == c["stage_s"]
    # The training stages are costed from the probe's step time, the others by their rates.
    n, epochs, _ = steps["full"]["train_baseline"]
    assert m["full_run_estimate_s_by_stage"]["train_baseline"] == round(15.0 + n * 0.040 + epochs * 0.8)
    rate = c["items_per_s_net"]["teacher_pairs"]
    assert m["full_run_estimate_s_by_stage"]["teacher_pairs"] == round(15.0 + c["full_items"]["teacher_pairs"] / rate)
    # The pairs' hot loop: 260,000 pairs x 200 steps of teacher forwards at the probe's 5,000 images/s.
    assert m["hot_loops_full_run_s"]["teacher_pairs"]["fp32"] == round(260_000 * 200 / 5000.0)
    assert m["full_run_estimate_h"] == pytest.approx(sum(m["full_run_estimate_s_by_stage"].values()) / 3600, abs=0.01)


def test_gpu_pipeline_splits_training_into_steps_and_per_epoch_cost():
    """A stage that took start + steps x step + epochs x overhead is costed at full scale with the
    same step time and per-epoch overhead, not by its samples per second."""
    from benchmarks import gpu_estimate

    c, probe, steps = _constructed_pipeline_run(start=15.0, step_s=0.040, per_epoch=0.8)
    c["probe"] = probe
    # The profile's 50 epochs of 50,000 pairs at batch 256 (the last partial batch dropped), and of
    # 250,000; PD 5 rounds of 20,000 steps. At 1/100 the subset is 500 pairs: 1 step an epoch.
    assert steps["full"]["train_lines"][:2] == (50 * 195, 50)
    assert steps["full"]["train_baseline"][:2] == (50 * 976, 50)
    assert steps["full"]["distill_progressive"][:2] == (5 * 20000, 5)
    assert steps["reduced"]["train_lines"][:2] == (50 * 1, 50)
    start, step_s, per_epoch = 15.0, 0.040, 0.8
    est = gpu_estimate.steps_and_overhead(c)
    for stage, (n, epochs, loop) in steps["full"].items():
        s = step_s * (2 if loop == "pd_step" else 1)
        assert est[stage] == pytest.approx(start + n * s + epochs * per_epoch)
        assert c["training_split"][stage]["per_epoch_s"] == pytest.approx(per_epoch, abs=1e-3)
    c["stage_rc"]["train_lines"] = 124  # a stage cut by its time box is not costed
    assert "train_lines" not in gpu_estimate.steps_and_overhead(c)


def test_gpu_pipeline_dry_run_of_the_50k_evaluation(tmp_path):
    """The 50k evaluation runs as its own module in a child process (benchmarks/evaluate_50k.py), here at
    500 vs 500 64-d features; its figures land under cifar_pipeline.evaluate_50k."""
    from benchmarks import gpu_pipeline

    gpu_pipeline.main(["--tiny", "--parts", "evaluate_50k", "--out", str(tmp_path)])
    r = json.loads((tmp_path / "gpu_pipeline.json").read_text())
    u = r["cifar_pipeline"]["evaluate_50k"]
    assert u["rc"] == 0, (tmp_path / "uncertainty.log").read_text()
    assert (u["n"], u["d"], u["replicates"]) == (500, 64, 8) and u["s"] > 0 and u["peak_host_gb"] > 0
    assert set(u["metrics"]) == {"fid", "kid", "precision", "recall"}
    assert set(u["errors"]) == {"fid_se", "kid_se", "precision_se", "recall_se"}
    assert r["cifar_pipeline"]["forward_gflop_per_image"]["teacher"] > 0
