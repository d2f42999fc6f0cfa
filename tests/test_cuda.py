"""Device placement: every tensor a stage creates meets its network on the same device.

These run only where CUDA is present and LINES_MODEL_TEST_CUDA=1 (skipped, never faked, elsewhere;
tests/conftest.py hides CUDA from the rest of the suite): the networks go to the GPU as the stages
put them there, and inputs come from the CPU as the stages make them. `make test` runs them apart
where nvidia-smi is found: LINES_MODEL_TEST_CUDA=1 python -m pytest tests/test_cuda.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import shipped_params

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA, and LINES_MODEL_TEST_CUDA=1 (the rest of the suite hides it)"
)
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    from lines_model.teachers import load_teacher

    return load_teacher(str(tiny_teacher), device=CUDA)


def test_progressive_sampler_takes_cpu_noise_to_a_cuda_network(teacher):
    from lines_model.methods.pd import target as progressive

    out = progressive.sample(teacher.unet, teacher.scheduler_config, torch.randn(4, 3, 16, 16), 4)
    assert out.device.type == "cuda" and torch.isfinite(out).all()


def test_teacher_parametrised_student_runs_on_cuda(teacher):
    from lines_model.samplers import lines_sample
    from lines_model.students import init_student

    s = (
        init_student(dataclasses.replace(shipped_params().student, init="teacher"), (3, 16, 16), teacher)
        .to(CUDA)
        .eval()
    )
    x = lines_sample(s, torch.randn(4, 3, 16, 16), 2)
    assert x.device.type == "cuda" and torch.isfinite(x).all()


def test_progressive_distillation_round_on_cuda(teacher, tmp_path):
    from lines_model.methods.pd import distill as pd_training
    from lines_model.generation import generate

    generate(
        teacher,
        tmp_path / "pairs",
        count=16,
        stream=0,
        sampler="ddim",
        steps=2,
        order=1,
        seed=0,
        batch_size=8,
        shard_size=8,
    )
    p = shipped_params()
    p = dataclasses.replace(
        p, pd=dataclasses.replace(p.pd, start_steps=4, iters_per_round=2, batch_size=4, warmup_steps=1)
    )
    pd_training.distill(
        p, teacher, pairs_dir=tmp_path / "pairs", out_dir=tmp_path / "pd", scratch_dir=tmp_path / "scratch"
    )
    assert sorted(q.name for q in (tmp_path / "pd").iterdir()) == ["1step", "2step"]


def test_evaluation_generators_and_trajectory_on_cuda(teacher, tmp_path):
    from lines_model import evaluation
    from lines_model.students import init_student, save_student

    params = shipped_params()
    params = dataclasses.replace(
        params,
        pd=dataclasses.replace(params.pd, start_steps=4),
        evaluate=dataclasses.replace(params.evaluate, pd_steps=(2,), lines_steps=(1, 2)),
        pairs=dataclasses.replace(params.pairs, steps=4, order=2),
    )
    s = init_student(dataclasses.replace(params.student, init="teacher"), (3, 16, 16), teacher)
    from lines_model.methods import registry
    from lines_model.methods.base import Layout

    layout = Layout(tmp_path)
    for method in ("lines", "baseline"):
        save_student(s, layout.model(method), {"method": method})
    save_student(teacher.unet, layout.model("pd") / "2step", {"method": "pd", "steps": 2}, teacher.scheduler_config)
    specs = registry.generators(params, teacher, layout, device=CUDA)
    lines = next(g.model for g in specs if g.name == "lines_1step")
    noise = torch.randn(4, 3, 16, 16)
    for spec in specs:
        assert spec.images(noise, 2).shape == (4, 3, 16, 16), spec.name
    xs, preds = evaluation.trajectory(lines, noise[:2], noise[:2], (0.0, 0.5, 1.0))
    assert xs.shape == preds.shape == (2, 3, 3, 16, 16)
