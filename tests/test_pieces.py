"""Small pieces the pipeline relies on: profile merge, subset selection, PSNR, PD resume."""

from __future__ import annotations

import contextlib
import dataclasses
import math

import pytest
import torch

from conftest import shipped_params
from lines_model.methods.pd import distill as pd_training
from lines_model.errors import ConfigError
from lines_model.imaging import PSNR_CAP_DB, per_sample_psnr, psnr
from lines_model.profile import merge
from lines_model.subset import select


def test_profile_merge_overrides_nested_keys_and_refuses_unknown_ones():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    assert merge(base, {"a": {"y": [3]}}) == {"a": {"x": 1, "y": [3]}, "b": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}  # the base is not modified
    assert merge(base, None) == base
    with pytest.raises(ConfigError, match=r"a\.z: unknown key \(not in the base params\)"):
        merge(base, {"a": {"z": 0}})


def test_subset_is_sorted_distinct_and_a_function_of_its_arguments():
    a = select(1000, 100, 0)
    assert a == sorted(set(a)) and len(a) == 100 and 0 <= a[0] and a[-1] < 1000
    assert a == select(1000, 100, 0) and a != select(1000, 100, 1)
    assert select(10, 10, 0) == list(range(10))
    with pytest.raises(ConfigError, match=r"subset\.count: 11 is larger than the 10 pairs"):
        select(10, 11, 0)


def test_psnr_of_known_errors():
    assert psnr(0.01) == pytest.approx(20.0) and psnr(1e-4) == pytest.approx(40.0)
    assert psnr(0.0) == PSNR_CAP_DB and math.isfinite(psnr(0.0))
    a = torch.zeros(2, 3, 4, 4)
    b = torch.stack([torch.full((3, 4, 4), 0.1), torch.zeros(3, 4, 4)])
    torch.testing.assert_close(per_sample_psnr(a, b), torch.tensor([20.0, PSNR_CAP_DB]))


@pytest.fixture(scope="module")
def pd_setup(tmp_path_factory, tiny_teacher):
    from lines_model.generation import generate
    from lines_model.teachers import load_teacher

    root = tmp_path_factory.mktemp("pd")
    teacher = load_teacher(str(tiny_teacher))
    generate(
        teacher,
        root / "pairs",
        count=32,
        stream=0,
        sampler="ddim",
        steps=2,
        order=1,
        seed=0,
        batch_size=16,
        shard_size=16,
    )
    p = shipped_params()
    p = dataclasses.replace(
        p,
        pd=dataclasses.replace(p.pd, start_steps=4, iters_per_round=2, batch_size=8, warmup_steps=1),
        # fp32: a resumed round then equals an uninterrupted one to float rounding (under CPU
        # bf16 they agree to ~1e-5 only: the reloaded weights may get other oneDNN kernels)
        runtime=dataclasses.replace(p.runtime, threads=0, mixed_precision="auto"),
    )
    return root, teacher, p


def test_pd_resumes_at_the_round_it_was_in_and_keeps_every_round(pd_setup, monkeypatch):
    root, teacher, params = pd_setup
    pd_training.distill(params, teacher, pairs_dir=root / "pairs", out_dir=root / "ref", scratch_dir=root / "s1")
    assert sorted(p.name for p in (root / "ref").iterdir()) == ["1step", "2step"]
    assert not list((root / "s1").iterdir()), "scratch is emptied once the output is written"

    real_train, calls = pd_training.train, []

    def dying(*args, **kw):
        calls.append(kw["desc"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second round
        return real_train(*args, **kw)

    monkeypatch.setattr(pd_training, "train", dying)
    with pytest.raises(KeyboardInterrupt):
        pd_training.distill(params, teacher, pairs_dir=root / "pairs", out_dir=root / "out", scratch_dir=root / "s2")
    assert not (root / "out").exists()
    calls.clear()
    monkeypatch.setattr(pd_training, "train", lambda *a, **kw: (calls.append(kw["desc"]), real_train(*a, **kw))[1])
    pd_training.distill(params, teacher, pairs_dir=root / "pairs", out_dir=root / "out", scratch_dir=root / "s2")
    assert calls == ["pd 2->1"], "the finished first round is not trained again"
    for k in ("2step", "1step"):
        from safetensors.torch import load_file

        a = load_file(root / "ref" / k / "diffusion_pytorch_model.safetensors")
        b = load_file(root / "out" / k / "diffusion_pytorch_model.safetensors")
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)


def test_pd_round_identity_ignores_what_does_not_change_a_round(pd_setup):
    _, teacher, params = pd_setup
    ident = lambda p, n=2: pd_training.round_identity(p, "sha", {}, n)  # noqa: E731
    base = ident(params)
    for change in ({"end_steps": 2}, {"log_every": 1}, {"checkpoint_every": 7}, {"num_workers": 2}):
        assert ident(dataclasses.replace(params, pd=dataclasses.replace(params.pd, **change))) == base, change
    for change in ({"lr": 1e-3}, {"start_steps": 8}, {"iters_per_round": 3}):
        assert ident(dataclasses.replace(params, pd=dataclasses.replace(params.pd, **change))) != base, change


@pytest.mark.parametrize("precision", ["auto", "no", "bf16", "fp16"])
def test_the_teacher_runs_fp32_on_a_cpu_whatever_the_precision(precision):
    from lines_model import runtime

    assert runtime.autocast_for(torch.device("cpu"), precision) is contextlib.nullcontext


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_explicit_precisions_autocast_the_teacher_on_cuda():
    from lines_model import runtime

    for precision, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        ctx = runtime.autocast_for(torch.device("cuda"), precision)()  # built, not entered: no GPU needed
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == dtype
    assert runtime.autocast_for(torch.device("cuda"), "no") is contextlib.nullcontext
