"""Teacher folders in the hub's own format: google/ddpm-cifar10-32's files were written by diffusers 0.1
and lack keys today's diffusers adds (prediction_type among them). Every config the project derives from
such a teacher must keep its explicit values on the way back from disk.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from diffusers import DDPMScheduler

from conftest import make_tiny_teacher, shipped_params
from lines_model import generation, noise, noise_schedule, parametrisation
from lines_model.methods import registry
from lines_model.methods.pd import distill as pd_training, target as progressive, teacher_generators
from lines_model.config.runtime import RuntimeCfg
from lines_model.students import load_scheduler_config, save_student
from lines_model.teachers import load_teacher
from oracle import GaussianOracle
from tools.random_teacher import HUB_SCHEDULER_CONFIG, HUB_UNET_CONFIG, save_random_cifar_teacher

MU, S = 0.2, 0.5


def _hub_format_teacher(folder, *, with_prediction_key: bool):
    """A tiny epsilon teacher whose scheduler_config.json is the hub's (optionally with the key written)."""
    make_tiny_teacher(folder, prediction_type="epsilon")
    cfg = dict(HUB_SCHEDULER_CONFIG, **({"prediction_type": "epsilon"} if with_prediction_key else {}))
    (folder / "scheduler_config.json").write_text(json.dumps(cfg))
    return folder


def test_random_teacher_writes_the_hubs_key_sets(tmp_path):
    folder = save_random_cifar_teacher(tmp_path / "t")
    assert json.loads((folder / "config.json").read_text()) == HUB_UNET_CONFIG
    assert json.loads((folder / "scheduler_config.json").read_text()) == HUB_SCHEDULER_CONFIG
    assert "prediction_type" not in HUB_SCHEDULER_CONFIG
    t = load_teacher(str(folder))
    assert t.scheduler_config["prediction_type"] == "epsilon"
    assert not any(k.startswith("_") and k not in ("_class_name", "_diffusers_version") for k in t.scheduler_config)


def test_an_override_of_a_defaulted_key_survives_resolve():
    read = dict(DDPMScheduler.from_config(HUB_SCHEDULER_CONFIG).config)  # diffusers hands back its bookkeeping
    assert "prediction_type" in read["_use_default_values"]
    derived = noise_schedule.resolve({**read, "prediction_type": "v_prediction"})
    assert "_use_default_values" not in derived
    assert noise_schedule.ddpm(derived).config.prediction_type == "v_prediction"


class _IdealStudent(torch.nn.Module):
    """The exact N-step progressive-distillation student of `teacher`, in the epsilon_bounded reading:
    from z_t it outputs what makes one DDIM step land where two teacher DDIM steps land."""

    def __init__(self, teacher, cfg: dict, steps: int):
        super().__init__()
        self.teacher, self.sch = teacher, progressive.Schedule(cfg)
        self.fine = progressive.grid(2 * steps) + [-1]

    def forward(self, z, t):
        sch, fine = self.sch, torch.tensor(self.fine)
        idx = torch.tensor([self.fine.index(int(tt)) for tt in t])
        t_mid, t_next = fine[idx + 1], fine[idx + 2]
        x1, e1 = sch.to_x_eps(self.teacher(z, t).sample, z, t)
        z_mid = sch.ddim_step(x1, e1, t_mid)
        x2, e2 = sch.to_x_eps(self.teacher(z_mid, t_mid).sample, z_mid, t_mid)
        last = (t_next < 0).view(-1, 1, 1, 1)
        z_next = torch.where(last, x2, sch.ddim_step(x2, e2, t_next.clamp(min=0)))
        a_t, s_t = sch.alpha_sigma(t)
        a_n, s_n = sch.alpha_sigma(t_next)
        x_tilde = torch.where(last, x2, (z_next - s_n / s_t * z) / (a_n - s_n / s_t * a_t))
        out = parametrisation.output_for(x_tilde, z, a_t, s_t, "epsilon_bounded")
        return type("Out", (), {"sample": out})()


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_an_ideal_pd_student_of_a_hub_format_teacher_reloads_onto_the_teachers_result(tmp_path, steps):
    """An epsilon teacher read from the hub's file, its PD student's config saved and read back the way
    the pipeline does: the exact student then reproduces the teacher's 2N-step DDIM (it was read as
    plain epsilon, landing off by RMS 0.9 at N = 1, when the file kept diffusers' bookkeeping)."""
    teacher = load_teacher(str(_hub_format_teacher(tmp_path / "teacher", with_prediction_key=False)))
    teacher_cfg = dict(teacher.scheduler_config, clip_sample=False)
    oracle = GaussianOracle(teacher_cfg, MU, S)
    student_cfg = {**teacher_cfg, "prediction_type": parametrisation.student_prediction("epsilon")}
    save_student(teacher.unet, tmp_path / "student", {"kind": "progressive", "steps": steps}, student_cfg)
    reloaded = load_scheduler_config(tmp_path / "student")
    assert reloaded["prediction_type"] == "epsilon_bounded"
    z = torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    got = progressive.sample(_IdealStudent(oracle, teacher_cfg, steps), reloaded, z, steps)
    want = progressive.sample(oracle, teacher_cfg, z, 2 * steps)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def _with_pd_start(steps: int):
    p = shipped_params()
    return dataclasses.replace(p, pd=dataclasses.replace(p.pd, start_steps=steps, end_steps=1))


def _distil_two_rounds(tmp_path, teacher_folder):
    p = shipped_params()
    params = dataclasses.replace(
        p,
        pd=dataclasses.replace(p.pd, start_steps=4, end_steps=1, iters_per_round=2, batch_size=8, log_every=1),
        runtime=RuntimeCfg(mixed_precision="no", compile=False, threads=1),
    )
    teacher = load_teacher(str(teacher_folder))
    pairs_dir = tmp_path / "pairs"
    if not pairs_dir.exists():
        generation.generate(
            teacher,
            pairs_dir,
            count=16,
            stream=noise.TRAIN,
            sampler="ddim",
            steps=2,
            order=1,
            seed=0,
            batch_size=16,
            shard_size=16,
        )
    out = tmp_path / f"pd-{teacher_folder.name}"
    torch.manual_seed(0)
    pd_training.distill(params, teacher, pairs_dir=pairs_dir, out_dir=out, scratch_dir=tmp_path / "scratch")
    return teacher, out


def test_pd_rounds_from_a_hub_format_teacher_match_those_from_a_folder_with_the_key(tmp_path):
    """PD's first two rounds (4 -> 2 -> 1 steps) from an epsilon teacher with the hub's scheduler config:
    every student reloads as epsilon_bounded, the type it trained as, and samples through the
    evaluation's path exactly as the students of the same teacher with prediction_type written."""
    hub = _hub_format_teacher(tmp_path / "hub", with_prediction_key=False)
    keyed = _hub_format_teacher(tmp_path / "keyed", with_prediction_key=True)
    teacher, out_hub = _distil_two_rounds(tmp_path, hub)
    _, out_keyed = _distil_two_rounds(tmp_path, keyed)
    z = noise.noise_for(range(8), teacher.sample_shape, 0, noise.HELDOUT)
    rt = RuntimeCfg(mixed_precision="no", compile=False, threads=1)
    for n in (2, 1):
        for out in (out_hub, out_keyed):
            assert (
                json.loads((out / f"{n}step" / "lines_model.json").read_text())["prediction_type"] == "epsilon_bounded"
            )
            assert load_scheduler_config(out / f"{n}step")["prediction_type"] == "epsilon_bounded"
        cpu = torch.device("cpu")
        g_hub = registry.load(out_hub / f"{n}step", device=cpu, runtime_cfg=rt)
        g_keyed = registry.load(out_keyed / f"{n}step", device=cpu, runtime_cfg=rt)
        ddim = teacher_generators(_with_pd_start(2 * n), teacher, device=cpu, runtime_cfg=rt)[0]
        x_hub, x_keyed, x_teacher = g_hub(z), g_keyed(z), ddim(z)
        assert torch.equal(x_hub, x_keyed)
        assert (x_hub - x_teacher).pow(2).mean() == (x_keyed - x_teacher).pow(2).mean()
