"""Progressive distillation (PD; Salimans & Ho, ICLR 2022): halve the teacher's DDIM steps, round by round.

target.py is the algorithm (the nested grid, the two-step target, the N-step sampler), distill.py the
rounds of the shared training loop. Each round's student is a folder models/pd/<N>step whose
scheduler config carries the prediction type it trained as; it samples in exactly its N steps.
"""

from __future__ import annotations

from pathlib import Path

from lines_model import runtime
from lines_model.config import Params
from lines_model.errors import ConfigError, InputError
from lines_model.generators import Generator, sample_shape
from lines_model.provenance import TRAIN_KEYS, section_keys
from lines_model.methods.base import Layout, Method, generator_name
from lines_model.methods.pd import distill, target
from lines_model.students import load_pd_student

NAME = "pd"
LABEL = "PD"


def train(params: Params, layout: Layout, *, out=None, live=None, made_from=None) -> None:
    from lines_model.teachers import load_teacher

    teacher = load_teacher(params.teacher.model, params.teacher.revision, device=runtime.state().device)
    distill.distill(
        params,
        teacher,
        pairs_dir=layout.pairs,
        out_dir=out or layout.model(NAME),
        scratch_dir=layout.scratch,
        entry=__file__,
        made_from=made_from,
    )


def load(folder, meta: dict | None = None, steps: int | None = None, *, device="cpu", runtime_cfg=None) -> Generator:
    """The student of one round: it samples in exactly its own step count."""
    from lines_model.students import read_sidecar

    folder = Path(folder)
    own = (meta or read_sidecar(folder)).get("steps")
    if not isinstance(own, int) or own < 1:
        raise InputError(f"{folder / 'lines_model.json'}: steps {own!r} is not a progressive-distillation student's")
    if steps not in (None, own):
        raise InputError(
            f"--steps: {folder} is a progressive-distillation student that samples in exactly {own} steps, not {steps}"
        )
    net, cfg = load_pd_student(folder, device)
    shape = sample_shape(net.config)
    net = runtime.prepare_inference(net, device, runtime_cfg) if runtime_cfg else net
    return Generator(
        generator_name(NAME, own),
        own,
        lambda n: target.sample(net, cfg, n, own),
        shape,
        net,
        label=f"{LABEL} {own}-step",
    )


def generators(params: Params, folder, **kw) -> list[Generator]:
    """The students of evaluate.pd_steps, most steps first."""
    return [load(Path(folder) / f"{k}step", **kw) for k in sorted(params.evaluate.pd_steps, reverse=True)]


def teacher_ddim_name(steps: int) -> str:
    return f"teacher_ddim{steps}"


def teacher_generators(params: Params, teacher, *, device, runtime_cfg) -> list[Generator]:
    """The teacher as DDIM on PD's nested grid at pd.start_steps: what PD's first round distils."""
    steps = params.pd.start_steps
    unet = runtime.prepare_inference(teacher.unet, device, runtime_cfg)
    cfg = teacher.scheduler_config
    return [
        Generator(
            teacher_ddim_name(steps),
            steps,
            lambda n: target.sample(unet, cfg, n, steps),
            teacher.sample_shape,
            unet,
            label=f"teacher DDIM-{steps}",
        )
    ]


def differences(params: Params):
    """PD's 4-step student against the DDIM sampler it distils."""
    return [(generator_name(NAME, 4), teacher_ddim_name(params.pd.start_steps))]


def check(params: Params, unet_config: dict, scheduler_config: dict) -> None:
    T = scheduler_config["num_train_timesteps"]
    if params.pd.start_steps > T:
        raise ConfigError(f"pd.start_steps: {params.pd.start_steps} steps exceed the teacher's {T} training timesteps")


RECORDED = ("teacher", *section_keys("pd", *TRAIN_KEYS, "start_steps", "end_steps", "iters_per_round"), "runtime")

METHOD = Method(
    name=NAME,
    label=LABEL,
    section="pd",
    stage="distill_progressive",
    recorded=RECORDED,
    train=train,
    steps=lambda params: sorted(params.evaluate.pd_steps, reverse=True),
    generators=generators,
    load=load,
    differences=differences,
    teacher_generators=teacher_generators,
    check=check,
    curves=False,
    aliases=("progressive",),
)
