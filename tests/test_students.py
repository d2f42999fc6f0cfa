"""The Lines student's two parametrisations, and its folder round trip."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from conftest import shipped_params
from lines_model.config.students import BaselineCfg
from lines_model.losses import LinesLoss
from lines_model.samplers import lines_sample
from lines_model.students import LinesStudent, init_student, load_student, save_student
from lines_model.teachers import Teacher
from lines_model.training import train
from oracle import GaussianOracle
from test_training import STUDENT, RUNTIME, Pairs

MU, S = 0.2, 0.5


def test_random_init_reproduces_the_earlier_students_golden_values(tmp_path):
    """Golden values of the code before the teacher parametrisation existed (same seed, data, loop), within
    3-4x the spread of fp32 kernels across CPUs (oneDNN picks them by ISA and thread count)."""
    torch.manual_seed(0)
    student = init_student(STUDENT, (3, 8, 8))
    cfg = BaselineCfg(
        lr=3e-3,
        epochs=3,
        batch_size=16,
        warmup_steps=2,
        weight_decay=0.0,
        grad_clip=1.0,
        ema_decay=0.9,
        loss="mse",
        seed=0,
        log_every=10,
        checkpoint_every=1000,
        num_workers=0,
    )
    fp32 = dataclasses.replace(RUNTIME, mixed_precision="auto")  # as the earlier default trained on a CPU
    r = train(student, LinesLoss("mse", "uniform"), Pairs(), cfg, fp32, epochs=3, checkpoint_dir=tmp_path, identity={})
    noise = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    # Max relative deviations over ONEDNN_MAX_CPU_ISA unset/AVX512_CORE/AVX2/SSE41 x 1, 2 threads:
    # 5.8e-8, 1.6e-5, 2.8e-5.
    assert r.final_loss == pytest.approx(0.17115159456928572, rel=2e-7)
    assert lines_sample(r.ema_model, noise, 1).double().sum().item() == pytest.approx(-6.763115540146828, rel=6e-5)
    assert lines_sample(r.ema_model, noise, 2).double().sum().item() == pytest.approx(-4.564681665040553, rel=1e-4)


def _oracle_teacher(prediction: str = "v_prediction") -> Teacher:
    cfg = dict(DDPMScheduler(prediction_type=prediction, beta_schedule="squaredcos_cap_v2").config)
    return Teacher(unet=GaussianOracle(cfg, MU, S), scheduler_config=cfg, source="oracle", folder=None, sha256="")


def _posterior_mean(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[C | X_t] for C ~ N(MU, S^2), N ~ N(0, 1), X_t = t C + (1-t) N (elementwise Gaussians)."""
    t = t.double().view(-1, 1, 1, 1)
    return MU + t * S**2 * (x_t.double() - t * MU) / (t**2 * S**2 + (1 - t) ** 2)


@pytest.mark.parametrize("prediction", ["v_prediction", "sample"])
def test_teacher_init_is_exactly_the_teachers_denoiser_on_the_line(prediction):
    """With the exact denoiser of Gaussian data as 'teacher network', S(X_t, t) at initialisation must be
    the exact posterior mean of C given X_t: the reparametrisation maps every point of the line to the
    teacher input with the same log-SNR and reads its output back correctly."""
    student = LinesStudent(
        _oracle_teacher(prediction).unet, "teacher", scheduler_config=_oracle_teacher(prediction).scheduler_config
    )
    g = torch.Generator().manual_seed(0)
    n = 512
    t = torch.rand(n, generator=g) * 0.9 + 0.05  # inside the teacher's log-SNR range
    clean = MU + S * torch.randn(n, 3, 4, 4, generator=g)
    noise = torch.randn(n, 3, 4, 4, generator=g)
    x_t = t.view(-1, 1, 1, 1) * clean + (1 - t.view(-1, 1, 1, 1)) * noise
    torch.testing.assert_close(student(x_t, t).double(), _posterior_mean(x_t, t), rtol=0, atol=2e-3)


def test_teacher_time_maps_log_snr_and_clamps_at_the_ends():
    teacher = _oracle_teacher()
    student = LinesStudent(teacher.unet, "teacher", scheduler_config=teacher.scheduler_config)
    ab = DDPMScheduler.from_config(teacher.scheduler_config).alphas_cumprod.double()
    tau, alpha, sigma = student.teacher_time(torch.tensor([0.0, 0.5, 1.0]))
    assert tau[0] == 999 and tau[2] == 0  # t = 0 starts where the teacher's sampling starts
    torch.testing.assert_close(alpha[0].double() ** 2, ab[999], rtol=1e-4, atol=1e-9)
    # t = 1/2: alpha = sigma, log-SNR 0, the timestep where alpha_bar = 1/2.
    assert abs(alpha[1] - sigma[1]) < 1e-6
    lo = int(torch.nonzero(ab < 0.5)[0]) - 1
    assert lo <= tau[1] <= lo + 1
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(3))


def test_eps_teacher_output_is_read_bounded():
    cfg = dict(DDPMScheduler(prediction_type="epsilon").config)
    seen = {}

    class Net(torch.nn.Module):
        def forward(self, z, tau):
            seen["z"] = z
            return type("O", (), {"sample": torch.ones_like(z)})()

    student = LinesStudent(Net(), "teacher", scheduler_config=cfg)
    x = torch.randn(2, 3, 4, 4)
    out = student(x, torch.zeros(2))
    _, alpha, sigma = student.teacher_time(torch.zeros(2))
    # At t = 0, z = N and sigma > alpha: x = (z - sigma eps) / sigma, finite, where the exact eps
    # conversion would divide by alpha ~ 0.
    torch.testing.assert_close(seen["z"], x)
    assert sigma[0] > alpha[0]
    torch.testing.assert_close(out, (x - sigma[0]) / sigma[0])


def test_student_folder_round_trip_for_both_parametrisations(tmp_path, tiny_teacher):
    from lines_model.teachers import load_teacher

    teacher = load_teacher(str(tiny_teacher))
    params = shipped_params()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.0, 0.3, 1.0])
    tiny = dataclasses.replace(
        params.student,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    for init in ("teacher", "random"):
        torch.manual_seed(0)
        s = init_student(dataclasses.replace(tiny, init=init), (3, 16, 16), teacher).eval()
        save_student(s, tmp_path / init, {"kind": "lines"})
        loaded, meta = load_student(tmp_path / init)
        assert meta["parametrisation"] == {"teacher": "teacher", "random": "direct"}[init]
        assert isinstance(loaded.unet, UNet2DModel)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x, t), s(x, t))
