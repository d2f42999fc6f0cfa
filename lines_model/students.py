"""The one-step students of Lines and the baseline: S(X_t, t) -> C_hat for t in [0, 1].

Every Lines input lies on the straight line between noise N and the teacher's image C,
X_t = t*C + (1-t)*N (line.point_on_line). A `LinesStudent` wraps a diffusers UNet2DModel in one of
two parametrisations:

- "direct" (student.init: random): C_hat = unet(X_t, t * t_scale), a fresh network.
- "teacher" (student.init: teacher): the teacher's own network, fed exactly what it was trained
  on. X_t is a variance-preserving sample once divided by s = sqrt(t^2 + (1-t)^2): z = X_t / s has
  alpha = t/s and sigma = (1-t)/s, i.e. log-SNR lambda = log(t / (1-t)). The network sees z at the
  teacher timestep tau with that log-SNR (clamped to the teacher's range, so t = 0 is the last
  training timestep, where the teacher's own sampling starts), and its output is converted to
  the image with the teacher's alpha_tau, sigma_tau. For a v- or x-prediction teacher, S(X_t, t)
  at initialisation is exactly the teacher's denoised estimate. An epsilon teacher (such as
  google/ddpm-cifar10-32) is read as "epsilon_bounded" (parametrisation.py): exact where
  alpha >= sigma (t >= 1/2), shrunk toward zero below, and z - eps_hat at t = 0, where the exact
  conversion would divide by alpha ~ 0.

A student folder is a diffusers `save_pretrained` folder of the UNet plus `lines_model.json`
(kind, parametrisation, t_scale) and, for the teacher parametrisation, the teacher's
`scheduler_config.json`: everything needed to run it alone (`lines_model.sample`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Literal

import torch
from diffusers import UNet2DModel

from lines_model import atomic, noise_schedule
from lines_model.parametrisation import student_prediction, to_x
from lines_model.samplers import log_snr
from lines_model.config.students import StudentCfg
from lines_model.errors import ConfigError, InputError
from lines_model.files import read_json

SIDECAR = "lines_model.json"  # kind, parametrisation and the resolved config that made the folder
SCHEDULER_FILE = "scheduler_config.json"
Parametrisation = Literal["direct", "teacher"]


class LinesStudent(torch.nn.Module):
    def __init__(
        self,
        unet: UNet2DModel,
        parametrisation: Parametrisation,
        *,
        t_scale: float | None = None,
        scheduler_config: dict | None = None,
    ):
        super().__init__()
        if parametrisation == "direct" and t_scale is None:
            raise ValueError(
                "t_scale: the direct parametrisation feeds t * t_scale to the network; give student.t_scale"
            )
        self.unet, self.parametrisation, self.t_scale = unet, parametrisation, t_scale
        self.scheduler_config = noise_schedule.resolve(scheduler_config) if scheduler_config else None
        if parametrisation == "teacher":
            if scheduler_config is None:
                raise ValueError("scheduler_config: the teacher parametrisation needs the teacher's noise schedule")
            s = noise_schedule.ddpm(scheduler_config)
            # lambda(tau) at the integer timesteps, decreasing in tau; interpolated linearly in between,
            # which is diffusers' convention (log sigma linear in t) and the pairs sampler's.
            self.register_buffer("log_snr", torch.from_numpy(log_snr(s.alphas_cumprod)).float(), persistent=False)
            self.output = student_prediction(s.config.prediction_type)
        elif parametrisation != "direct":
            raise ValueError(f"parametrisation: {parametrisation!r} is not 'direct' or 'teacher'")

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, device=x_t.device, dtype=torch.float32)
        if self.parametrisation == "direct":
            return self.unet(x_t, t * self.t_scale).sample.float()
        t = t.expand(x_t.shape[0]) if t.ndim == 0 else t
        tau, alpha, sigma = self.teacher_time(t)
        s = torch.sqrt(t**2 + (1 - t) ** 2).view(-1, 1, 1, 1)
        z = x_t / s
        out = self.unet(z, tau).sample.float()
        return to_x(out, z, alpha.view(-1, 1, 1, 1), sigma.view(-1, 1, 1, 1), self.output)

    def teacher_time(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tau, alpha_tau, sigma_tau): the teacher timestep whose log-SNR is log(t / (1-t)), clamped."""
        table = self.log_snr  # decreasing in tau
        lam = (torch.log(t) - torch.log1p(-t)).clamp(float(table[-1]), float(table[0]))
        # Searching -lambda in the increasing table -log_snr finds the bracketing integer timesteps.
        hi = torch.searchsorted(-table, -lam).clamp(1, len(table) - 1)
        lo = hi - 1
        w = (lam - table[lo]) / (table[hi] - table[lo])
        tau = lo.float() + w
        return tau, torch.sigmoid(2 * lam).sqrt(), torch.sigmoid(-2 * lam).sqrt()


def build_unet(cfg: StudentCfg, sample_shape: tuple[int, int, int]) -> UNet2DModel:
    """A fresh UNet2DModel of the student architecture for images of `sample_shape`."""
    c, h, w = sample_shape
    if h != w:
        raise ConfigError(f"student: square images only, the teacher makes {h}x{w}")
    cfg.check_image_size(h)
    return UNet2DModel(
        sample_size=h,
        in_channels=c,
        out_channels=c,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=cfg.down_block_types,
        up_block_types=cfg.up_block_types,
        norm_num_groups=cfg.norm_num_groups,
    )


def init_student(cfg: StudentCfg, sample_shape: tuple[int, int, int], teacher=None) -> LinesStudent:
    """The untrained student: a copy of `teacher` (init teacher) or a fresh UNet (init random).

    A fresh UNet draws its weights from torch's global generator: seed it first.
    """
    if cfg.init == "teacher":
        if teacher is None:
            raise ValueError("teacher: student.init is 'teacher' but no teacher was given")
        unet = copy.deepcopy(teacher.unet).float().train().requires_grad_(True)
        return LinesStudent(unet, "teacher", scheduler_config=teacher.scheduler_config)
    return LinesStudent(build_unet(cfg, sample_shape), "direct", t_scale=cfg.t_scale)


def save_student(
    model: torch.nn.Module, folder: str | Path, sidecar: dict, scheduler_config: dict | None = None
) -> None:
    """save_pretrained (safetensors) of the UNet + sidecar (+ scheduler config), replacing `folder` atomically.

    `model` is a LinesStudent or a bare UNet2DModel (progressive-distillation students).
    """
    unet = model.unet if isinstance(model, LinesStudent) else model
    if isinstance(model, LinesStudent):
        sidecar = {**sidecar, "parametrisation": model.parametrisation, "t_scale": model.t_scale}
        if model.parametrisation == "teacher":
            sidecar["prediction_type"] = model.output
        scheduler_config = scheduler_config or model.scheduler_config
    with atomic.atomic_dir(folder) as tmp:
        unet.save_pretrained(tmp, safe_serialization=True)
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
        if scheduler_config is not None:
            (tmp / SCHEDULER_FILE).write_text(json.dumps(noise_schedule.resolve(scheduler_config), indent=2) + "\n")


def read_sidecar(folder: str | Path) -> dict:
    path = Path(folder) / SIDECAR
    if not Path(folder).is_dir():
        raise InputError(f"{folder}: not a folder; expected a trained student folder (under models/)")
    if not path.exists():
        raise InputError(f"{path}: missing; not a student folder made by this project")
    return read_json(path, "a student's lines_model.json")


def load_unet(folder: str | Path, device="cpu") -> UNet2DModel:
    folder = Path(folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    if not weights.exists():
        raise InputError(f"{weights}: missing student weights; run its training stage")
    read_json(folder / "config.json", "the student's UNet2DModel config")
    try:
        unet = UNet2DModel.from_pretrained(folder, use_safetensors=True)
    except Exception as e:  # a damaged weights file, or weights that do not fit the config
        raise InputError(
            f"{weights}: could not load the student's weights ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    return unet.to(device).eval().requires_grad_(False)


def load_scheduler_config(folder: str | Path) -> dict:
    return noise_schedule.resolve(
        read_json(Path(folder) / SCHEDULER_FILE, "the student's noise schedule (a DDPMScheduler config)")
    )


def load_student(folder: str | Path, device="cpu") -> tuple[LinesStudent, dict]:
    """A one-step student folder -> (LinesStudent in eval mode, sidecar)."""
    meta = read_sidecar(folder)
    param = meta.get("parametrisation")
    if param not in ("direct", "teacher") or (param == "direct" and not isinstance(meta.get("t_scale"), (int, float))):
        raise InputError(
            f"{Path(folder) / SIDECAR}: parametrisation {param!r} / t_scale {meta.get('t_scale')!r} is not a student's"
        )
    sched = load_scheduler_config(folder) if param == "teacher" else None
    student = LinesStudent(load_unet(folder, device), param, t_scale=meta.get("t_scale"), scheduler_config=sched)
    if param == "teacher":
        check_prediction(folder, meta, student.output)
    return student.to(device).eval().requires_grad_(False), meta


def check_prediction(folder: str | Path, meta: dict, read_as: str) -> None:
    """Refuse a folder whose network would be read in another parametrisation than it was trained in."""
    trained = meta.get("prediction_type")
    if trained is not None and trained != read_as:
        raise InputError(
            f"{Path(folder) / SCHEDULER_FILE}: reads the network as {read_as!r}, but it was trained as {trained!r}"
        )


def load_pd_student(folder: str | Path, device="cpu") -> tuple[UNet2DModel, dict]:
    """(network, scheduler config) of a progressive-distillation student folder."""
    cfg = load_scheduler_config(folder)
    check_prediction(folder, read_sidecar(folder), cfg["prediction_type"])
    return load_unet(folder, device), cfg


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
