"""Sizes of the benchmark runs: FULL (`make bench`, about an hour on 2 idle cores, 40 minutes of it the
uncertainty section) and QUICK (`--quick`)."""

from __future__ import annotations

FULL = dict(
    train_batch=64,  # every method's optimizer step at one batch size (benchmarks/training.py)
    train_rounds=8,
    n_noise=256,  # noises every teacher sampler runs on
    original_steps=200,  # DDIM steps of the original loop
    original_batch=256,  # the original sampled in batches of 256
    reference_steps=500,  # converged DPM-Solver++ solve
    reference_check_steps=250,  # the same solve at half the steps: convergence check
    reference_check_count=128,  # noises of the convergence check
    candidate_steps=(10, 12, 15, 18, 20, 22, 25, 28, 30, 35, 40, 50, 60, 80, 100),  # DPM-Solver++ step counts tried
    candidate_orders=(2, 3),  # solver orders tried at each step count, in this order (same cost)
    candidate_count=64,  # noises the candidates' PSNR is measured on
    pairs_rounds=2,  # interleaved rounds of the original loop against ours, each one call of each on all n_noise
    onestep_batches=(16, 256),
    onestep_repeats=3,  # interleaved rounds of the one-step timings (teacher and student alike)
    mem_pairs=250_000,
    mem_shard=5_000,  # as profiles/cifar10.yaml
    mem_shape=(3, 32, 32),
    mem_batch=256,
    mem_train_steps=5,
    mem_microbatch=32,  # training steps accumulate the batch of 256 over micro-batches (see README)
    gpu_batch=256,
    gpu_small_batch=16,
    gpu_ddim_steps=200,
    gpu_dpm_steps=20,
    gpu_ddim_repeats=2,
    gpu_dpm_repeats=3,
    gpu_dpm_order=3,
    gpu_train_steps=30,  # per epoch; 2 epochs timed after one of warm-up
    gpu_num_workers=4,
    gpu_compile=True,
    gpu_speed_repeats=5,  # interleaved rounds of the small-batch teacher samplers and the 1-step student
    unc_n=50_000,  # generated features of the uncertainty section (CIFAR-10's data_count) ...
    unc_m=50_000,  # ... against as many reference features (CIFAR-10 train) ...
    unc_d=2048,  # ... of Inception's dimension
    unc_replicates=200,  # evaluate.se_replicates of params.yaml
    unc_shift=0.05,  # mean shift of the generated features in every dimension
    unc_timeout_s=3 * 3600,
)
QUICK = dict(
    FULL,
    train_batch=4,
    train_rounds=2,
    n_noise=32,
    original_steps=30,
    original_batch=32,
    reference_steps=60,
    reference_check_steps=30,
    reference_check_count=8,
    candidate_steps=(4, 6, 8, 10, 15, 20, 30),
    candidate_count=16,
    onestep_batches=(16, 32),
    onestep_repeats=1,
    mem_pairs=2_000,
    mem_shard=500,
    mem_batch=128,
    mem_train_steps=1,
    gpu_ddim_repeats=1,
    gpu_dpm_repeats=1,
    gpu_train_steps=2,
    gpu_num_workers=0,
    gpu_compile=False,
    gpu_speed_repeats=2,
    unc_n=1_200,
    unc_m=1_000,
    unc_d=64,
    unc_replicates=50,
    unc_timeout_s=600,
)
