"""Training throughput of every method's optimizer step, interleaved in one run (`make bench`, section
`train`): samples per second at one batch size, and the teacher forwards each sample costs.

Each method's loss runs on the shipped teacher at the default params, one optimizer step per call
(forward, backward, AdamW step; consistency distillation also updates its target network), all
methods in seeded, balanced rounds (lines_model.timing), so the ratios hold on a busy machine too.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from lines_model.config import Params
from lines_model.losses import BaselineLoss, LinesLoss
from lines_model.methods import cd
from lines_model.methods.pd.target import PDLoss
from lines_model.parametrisation import student_prediction
from lines_model.students import init_student
from lines_model.timing import time_interleaved


def _step(net, loss_fn, noise, clean, hook=None):
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        loss = loss_fn(net, noise, clean, g)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if hook is not None:
            hook.after_step(net)

    return step


def bench_training(params: Params, teacher, *, batch: int, rounds: int) -> dict:
    """{"batch", "rounds", method: {"samples_per_s", "ms_per_step", "ms_per_step_iqr",
    "teacher_forwards_per_sample"}}."""
    shape = teacher.sample_shape
    g = torch.Generator().manual_seed(0)
    noise, clean = torch.randn(batch, *shape, generator=g), torch.randn(batch, *shape, generator=g).clamp(-1, 1)
    student_cfg = dataclasses.replace(params.student, init="teacher")
    one_step = lambda: init_student(student_cfg, shape, teacher).train()  # noqa: E731
    sched = teacher.scheduler_config
    frozen = teacher.unet.eval().requires_grad_(False)
    pd_net = copy.deepcopy(teacher.unet).float().train().requires_grad_(True)
    pd_loss = PDLoss(
        frozen,
        sched["prediction_type"],
        student_prediction(sched["prediction_type"]),
        sched,
        params.pd.start_steps // 2,
        params.pd.loss,
    )
    c = params.cd
    s_min, s_max = cd.sigma_range(params, sched)
    f = cd.ConsistencyFunction(one_step(), s_min, c.sigma_data)
    target = cd.TargetNetwork(f, c.mu)
    cd_loss = cd.CDLoss(
        cd.TeacherODE(frozen, sched), target, cd.discretisation(s_min, s_max, c.num_points, c.rho), c.solver, c.loss
    )
    fns = {
        "lines": _step(one_step(), LinesLoss(params.train_lines.loss, params.train_lines.t_dist), noise, clean),
        "baseline": _step(one_step(), BaselineLoss(params.train_baseline.loss), noise, clean),
        "pd": _step(pd_net, pd_loss, noise, clean),
        "cd": _step(f, cd_loss, noise, clean, target),
    }
    forwards = {"lines": 0, "baseline": 0, "pd": 2, "cd": 1 if c.solver == "euler" else 2}
    timings = time_interleaved(fns, images_per_call=batch, rounds=rounds, warmup=1, reference="lines")
    out: dict = {"batch": batch, "rounds": rounds, "cd_solver": c.solver}
    for name, t in timings.items():
        out[name] = {
            "samples_per_s": 1000.0 / t.ms_per_image,
            "ms_per_step": t.ms_per_image * batch,
            "ms_per_step_iqr": t.ms_per_image_iqr * batch,
            "teacher_forwards_per_sample": forwards[name],
        }
    return out
