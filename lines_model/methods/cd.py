"""Consistency distillation (CD; Song et al., ICML 2023, arXiv:2303.01469) of the teacher's ODE.

Noise levels. The method works in the variance-exploding coordinates of the paper: x = C + sigma*N.
A DDPM sample z_tau = alpha_tau C + s_tau N is x / sqrt(1 + sigma^2) with sigma = s_tau / alpha_tau =
sqrt((1 - alpha_bar_tau) / alpha_bar_tau), so the teacher's timestep tau and the noise level sigma are
one another's functions (log sigma interpolated linearly between integer timesteps, as diffusers
does; students.LinesStudent.teacher_time). A point on Lines' line is the same thing scaled:
X_t = t*C + (1-t)*N = t (C + sigma N) with sigma = (1 - t) / t, so t = 1 / (1 + sigma), and the
denoiser of any one-step student S(X_t, t) is D(x, sigma) = S(x / (1 + sigma), 1 / (1 + sigma)).
That is how both starting points read: the teacher's copy (a LinesStudent in the teacher's own
parametrisation) and the trained Lines student.

Consistency function: f(x, sigma) = c_skip(sigma) x + c_out(sigma) D(x, sigma), with the paper's
c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2) and c_out = 1 - c_skip, so that
f(x, sigma_min) = x exactly and the starting network's denoiser is a consistent start (the paper's
c_out scales a raw network output instead).

Training (Algorithm 2): for the discretisation sigma_1 = sigma_min < ... < sigma_N = sigma_max
(Karras et al.'s rho spacing), draw n, x_{n+1} = C + sigma_{n+1} z, take one step of the teacher's
ODE to sigma_n (Euler in sigma, which is DDIM, or Heun), and pull f_theta(x_{n+1}, sigma_{n+1})
toward the target network's f_theta-(x_n, sigma_n), theta- <- mu theta- + (1 - mu) theta after every
step. The data are the pairs' images C (no other data set). The teacher's step is not clipped.

Sampling (Algorithm 1): x = N sqrt(1 + sigma_max^2), the teacher's own starting point for noise N in
these coordinates, then C_hat = f(x, sigma_max); step i > 1 re-noises to sampling_sigmas[i - 2] with
fresh noise seeded by the image's noise (the same noise gives the same image) and applies f again.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import torch

from lines_model import noise_schedule, pairs, runtime
from lines_model.config import Params
from lines_model.errors import ConfigError, InputError
from lines_model.generators import Generator, sample_shape
from lines_model.losses import distance
from lines_model.methods.base import Layout, Method, generator_name
from lines_model.hashing import hash_files
from lines_model.provenance import RECORD, scratch_key
from lines_model.samplers import log_snr
from lines_model.students import LinesStudent, init_student, load_student, save_student
from lines_model.training import train as train_loop

NAME = "cd"
LABEL = "CD"


def teacher_sigmas(scheduler_config: dict) -> tuple[float, float]:
    """(sigma at the first timestep, sigma at the last): the teacher's range of noise levels."""
    lam = log_snr(noise_schedule.ddpm(scheduler_config).alphas_cumprod)  # lambda = -log sigma
    return float(np.exp(-lam[0])), float(np.exp(-lam[-1]))


def discretisation(sigma_min: float, sigma_max: float, n: int, rho: float) -> torch.Tensor:
    """sigma_1 < ... < sigma_N (Karras et al. 2022, eq. 5), float64."""
    i = torch.arange(n, dtype=torch.float64) / (n - 1)
    return (sigma_min ** (1 / rho) + i * (sigma_max ** (1 / rho) - sigma_min ** (1 / rho))) ** rho


def line_time(sigma: torch.Tensor) -> torch.Tensor:
    """Lines' t of noise level sigma: X_t = t (C + sigma N) with t = 1 / (1 + sigma)."""
    return 1 / (1 + sigma)


def _per_image(sigma, x: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    return sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma


class ConsistencyFunction(torch.nn.Module):
    """f(x, sigma) = c_skip x + (1 - c_skip) D(x, sigma), D read off a one-step student S(X_t, t)."""

    def __init__(self, student: LinesStudent, sigma_min: float, sigma_data: float):
        super().__init__()
        self.student, self.sigma_min, self.sigma_data = student, sigma_min, sigma_data

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        sigma = _per_image(sigma, x)
        t = line_time(sigma)
        return self.student(x * t.view(-1, 1, 1, 1), t)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        sigma = _per_image(sigma, x)
        c_skip = (self.sigma_data**2 / ((sigma - self.sigma_min) ** 2 + self.sigma_data**2)).view(-1, 1, 1, 1)
        return c_skip * x + (1 - c_skip) * self.denoise(x, sigma)


class TeacherODE:
    """The teacher's probability-flow ODE in x = C + sigma*N: dx/dsigma = eps_hat(x, sigma)."""

    def __init__(self, teacher_unet, scheduler_config: dict):
        self.unet = teacher_unet
        self.reader = LinesStudent(teacher_unet, "teacher", scheduler_config=scheduler_config)  # the sigma -> tau map
        self.prediction = noise_schedule.resolve(scheduler_config)["prediction_type"]
        if self.prediction not in ("epsilon", "v_prediction", "sample"):
            raise ConfigError(f"teacher: prediction_type {self.prediction!r} is not a teacher's")

    @torch.no_grad()
    def eps(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        tau, a, s = self.reader.teacher_time(line_time(sigma))
        a, s = a.view(-1, 1, 1, 1), s.view(-1, 1, 1, 1)
        z = x * a  # a = 1 / sqrt(1 + sigma^2)
        out = self.unet(z, tau).sample.float()
        if self.prediction == "epsilon":
            return out
        if self.prediction == "v_prediction":
            return a * out + s * z
        return (z - a * out) / s

    def step(self, x: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, solver: str) -> torch.Tensor:
        """One step from sigma to sigma_next (per image): Euler (= DDIM) or Heun."""
        h = (sigma_next - sigma).view(-1, 1, 1, 1)
        d = self.eps(x, sigma)
        x_euler = x + h * d
        if solver == "euler":
            return x_euler
        return x + h * (d + self.eps(x_euler, sigma_next)) / 2


class TargetNetwork(torch.nn.Module):
    """theta^-: a copy of the online consistency function, theta^- <- mu theta^- + (1 - mu) theta after each step."""

    def __init__(self, online: torch.nn.Module, mu: float):
        super().__init__()
        self.net = copy.deepcopy(online).eval().requires_grad_(False)
        self.mu = mu

    @torch.no_grad()
    def after_step(self, online: torch.nn.Module) -> None:
        for p_t, p in zip(self.net.parameters(), online.parameters()):
            p_t.lerp_(p.detach().to(p_t.dtype), 1 - self.mu)

    def forward(self, x, sigma):
        return self.net(x, sigma)


class CDLoss:
    """d(f_theta(x_{n+1}, sigma_{n+1}), f_theta-(x_hat_n, sigma_n)), x_hat_n one teacher step from x_{n+1}."""

    def __init__(self, ode: TeacherODE, target: TargetNetwork, sigmas: torch.Tensor, solver: str, kind: str):
        self.ode, self.target, self.sigmas, self.solver, self.kind = ode, target, sigmas, solver, kind

    def __call__(self, net, noise: torch.Tensor, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        device, b = clean.device, clean.shape[0]
        n = torch.randint(0, len(self.sigmas) - 1, (b,), generator=generator)
        s_next = self.sigmas[n + 1].float().to(device)  # sigma_{n+1}
        s_n = self.sigmas[n].float().to(device)
        z = torch.randn(clean.shape, generator=generator).to(device)  # fresh: a pair's own noise is tied to its image
        x_next = clean + s_next.view(-1, 1, 1, 1) * z
        # The teacher's step and the target stay fp32 under autocast, as PD's targets do.
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            x_n = self.ode.step(x_next, s_next, s_n, self.solver)
            target = self.target(x_n, s_n)
        return distance(net(x_next, s_next), target, self.kind)


def sigma_range(params: Params, scheduler_config: dict) -> tuple[float, float]:
    lo, hi = teacher_sigmas(scheduler_config)
    cd = params.cd
    return (cd.sigma_min if cd.sigma_min is not None else lo), (cd.sigma_max if cd.sigma_max is not None else hi)


INITS = ("teacher", "lines")  # the teacher's copy, or the trained Lines student (dvc.yaml: models/lines)


def check(params: Params, unet_config: dict, scheduler_config: dict) -> None:
    for init in params.cd.init:
        if init not in INITS:
            raise ConfigError(f"cd.init: {init!r} is not one of {', '.join(INITS)}")
    lo, hi = teacher_sigmas(scheduler_config)
    s_min, s_max = sigma_range(params, scheduler_config)
    for key, v in (("cd.sigma_min", s_min), ("cd.sigma_max", s_max)):
        if not lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9):
            raise ConfigError(f"{key}: {v} lies outside the teacher's noise levels [{lo:.4g}, {hi:.4g}]")
    if not s_min < s_max:
        raise ConfigError(f"cd.sigma_min: {s_min} must be below cd.sigma_max={s_max}")
    for s in params.cd.sampling_sigmas:
        if not s_min < s < s_max:
            raise ConfigError(
                f"cd.sampling_sigmas: {s} must lie between sigma_min={s_min:.4g} and sigma_max={s_max:.4g}"
            )


def variant(init: str) -> str:
    """The method name of the model started from `init`: cd (the teacher, as the paper) or cd_lines."""
    return NAME if init == "teacher" else f"{NAME}_{init}"


def train(params: Params, layout: Layout, *, out=None, live=None, made_from=None) -> None:
    """Train one consistency model per cd.init into out/<init> (default models/cd/<init>)."""
    from dvclive import Live

    from lines_model.teachers import load_teacher

    cd, out = params.cd, Path(out or layout.model(NAME))
    teacher = load_teacher(params.teacher.model, params.teacher.revision, device=runtime.state().device)
    s_min, s_max = sigma_range(params, teacher.scheduler_config)
    sigmas = discretisation(s_min, s_max, cd.num_points, cd.rho)
    data = pairs.CleanImages(pairs.PairStore(layout.pairs))
    ode = TeacherODE(teacher.unet, teacher.scheduler_config)
    main = runtime.state().is_main_process
    done = {}
    for init in cd.init:
        name = variant(init)
        torch.manual_seed(cd.seed)
        if init == "teacher":
            student = init_student(dataclasses.replace(params.student, init="teacher"), teacher.sample_shape, teacher)
            start = teacher.sha256
        else:
            student, _ = load_student(layout.model("lines"))
            student = student.train().requires_grad_(True)
            start = hash_files(layout.model("lines") / "diffusion_pytorch_model.safetensors")
        f = ConsistencyFunction(student, s_min, cd.sigma_data)
        target = TargetNetwork(f, cd.mu)
        identity = {
            "train": cd.identity(),
            "init": init,
            "start": start,
            "teacher": teacher.sha256,
            "pairs": data.store.manifest.shards,
            "sigmas": sigmas.tolist(),
        }
        key = scratch_key(
            identity,
            entry=__file__,
            sections=("teacher", "student", "cd", "runtime"),
            precision=runtime.mixed_precision(params.runtime),
        )
        ckpt = layout.scratch / f"{name}-{key}"
        live_dir = Path(live or layout.live(NAME)) / init
        logger = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None) if main else None
        result = train_loop(
            f,
            CDLoss(ode, target, sigmas, cd.solver, cd.loss),
            data,
            cd,
            params.runtime,
            steps=cd.iterations,
            checkpoint_dir=ckpt,
            identity={"key": key},
            live=logger,
            hook=target,
            desc=name,
        )
        if not main:
            continue
        logger.log_metric("final_loss", result.final_loss, plot=False)
        logger.end()
        sidecar = {
            "method": NAME,
            "init": init,
            "steps_trained": result.steps,
            "final_loss": result.final_loss,
            "sigma_min": s_min,
            "sigma_max": s_max,
            "sigma_data": cd.sigma_data,
            "sampling_sigmas": list(cd.sampling_sigmas),
            "config": dataclasses.asdict(cd),
            "teacher": teacher.source,
        }
        if made_from is not None:
            sidecar[RECORD] = made_from
        done[init] = (result.ema_model.student, sidecar, ckpt)
    if not main:
        return
    from lines_model import atomic

    with atomic.atomic_dir(out) as tmp:
        for init, (student, sidecar, _) in done.items():
            save_student(student, tmp / init, sidecar)
    for _, _, ckpt in done.values():
        shutil.rmtree(ckpt, ignore_errors=True)


def _fresh_noise(noise: torch.Tensor, step: int) -> torch.Tensor:
    """Noise for a re-noising step, drawn per image from a seed made of that image's own noise, so
    an image does not depend on the batch it is generated in."""
    out = []
    for n in noise.detach().float().cpu():
        seed = int.from_bytes(hashlib.blake2b(n.numpy().tobytes() + bytes([step]), digest_size=8).digest(), "little")
        out.append(torch.randn(n.shape, generator=torch.Generator().manual_seed(seed % 2**63)))
    return torch.stack(out).to(noise.device)


@torch.no_grad()
def sample(f: ConsistencyFunction, noise: torch.Tensor, sigma_max: float, sampling_sigmas, steps: int) -> torch.Tensor:
    """Multistep consistency sampling (Algorithm 1) from the teacher's starting point for `noise`."""
    x = f(noise * (1 + sigma_max**2) ** 0.5, sigma_max)
    for i, s in enumerate(list(sampling_sigmas)[: steps - 1]):
        x = f(x + (s**2 - f.sigma_min**2) ** 0.5 * _fresh_noise(noise, i + 1), s)
    return x


def load(folder, meta: dict | None = None, steps: int | None = None, *, device="cpu", runtime_cfg=None) -> Generator:
    from lines_model.students import read_sidecar

    folder = Path(folder)
    meta = meta or read_sidecar(folder)
    k = 1 if steps is None else steps
    sigmas = meta.get("sampling_sigmas", [])
    if not 1 <= k <= 1 + len(sigmas):
        raise InputError(
            f"--steps: {folder} is a consistency model that samples in 1 to {1 + len(sigmas)} steps, not {k}"
        )
    student, _ = load_student(folder, device)
    student = runtime.prepare_inference(student, device, runtime_cfg) if runtime_cfg else student
    f = ConsistencyFunction(student, meta["sigma_min"], meta["sigma_data"])
    name = variant(meta.get("init", "teacher"))
    label = LABEL if name == NAME else f"{LABEL} from {meta['init'].capitalize()}"
    return Generator(
        generator_name(name, k),
        k,
        lambda n: sample(f, n, meta["sigma_max"], sigmas, k),
        sample_shape(student.unet.config),
        student,
        label=f"{label} {k}-step",
    )


def generators(params: Params, folder, **kw) -> list[Generator]:
    return [load(Path(folder) / init, steps=k, **kw) for init in params.cd.init for k in params.evaluate.cd_steps]


def generator_names(params: Params) -> list[str]:
    return [generator_name(variant(init), k) for init in params.cd.init for k in params.evaluate.cd_steps]


def differences(params: Params):
    """Each CD model at one step against the one-step students, at two steps against Lines' and PD's
    two steps, and CD from Lines against CD from the teacher."""
    out = []
    for init in params.cd.init:
        one, two = generator_name(variant(init), 1), generator_name(variant(init), 2)
        out += [(one, "baseline_1step"), (one, "lines_1step"), (two, "lines_2step"), (two, "pd_2step")]
    if {"teacher", "lines"} <= set(params.cd.init):
        out += [(generator_name(variant("lines"), k), generator_name(NAME, k)) for k in (1, 2)]
    return out


RECORDED = ("teacher", "student", "cd", "runtime")

METHOD = Method(
    name=NAME,
    label=LABEL,
    section="cd",
    stage="distill_consistency",
    recorded=RECORDED,
    train=train,
    steps=lambda params: params.evaluate.cd_steps,
    generators=generators,
    load=load,
    differences=differences,
    check=check,
    curves=False,
    names=generator_names,
)
