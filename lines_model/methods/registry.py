"""The methods the pipeline runs, in the order of the evaluation's rows; everything that iterates
methods reads `METHODS`. Adding a method: docs/add_a_method.md."""

from __future__ import annotations

import re
from pathlib import Path

from lines_model.config import Params
from lines_model.errors import InputError
from lines_model.generators import Generator
from lines_model.methods import baseline, cd, lines, pd
from lines_model.methods.base import Layout, Method
from lines_model.students import read_sidecar

METHODS: tuple[Method, ...] = (lines.METHOD, baseline.METHOD, pd.METHOD, cd.METHOD)


def by_name(name: str) -> Method:
    for m in METHODS:
        if name == m.name or name in m.aliases:
            return m
    raise InputError(f"unknown method {name!r}; the methods are {', '.join(m.name for m in METHODS)}")


def load(folder: str | Path, *, steps: int | None = None, device="cpu", runtime_cfg=None) -> Generator:
    """The generator of any trained folder (its sidecar names the method), in `steps` steps where the
    method allows a choice; `runtime_cfg` prepares the network for inference on `device`."""
    meta = read_sidecar(folder)
    name = meta.get("method", meta.get("kind"))  # "kind": the sidecar key of earlier versions
    try:
        method = by_name(name)
    except InputError:
        raise InputError(f"{Path(folder) / 'lines_model.json'}: unknown method {name!r}") from None
    return method.load(folder, meta, steps, device=device, runtime_cfg=runtime_cfg)


def generators(params: Params, teacher, layout: Layout, *, device, pairs_precision: str = "fp32") -> list[Generator]:
    """The evaluation's generators: the teacher's pairs sampler first (its speed is the speedup's
    denominator, and it runs at the precision its pairs were made at, so its MSE against them is 0),
    then every method's teacher-side generators, then every method's students."""
    from lines_model.generators import from_teacher

    p, kw = params.pairs, dict(device=device, runtime_cfg=params.runtime)
    out = [
        from_teacher(
            teacher, p.sampler, p.steps, order=p.order, lambda_min=p.lambda_min, precision=pairs_precision, **kw
        )
    ]
    for m in METHODS:
        out += m.teacher_generators(params, teacher, **kw)
    for m in METHODS:
        out += m.generators(params, layout.model(m.name), **kw)
    return out


def differences(params: Params) -> list[tuple[str, str]]:
    """Every method's (a, b) generator pairs, in registry order."""
    return [d for m in METHODS for d in m.differences(params)]


def check(params: Params, unet_config: dict, scheduler_config: dict) -> None:
    """Every method's params checks that need the teacher's configs."""
    for m in METHODS:
        m.check(params, unet_config, scheduler_config)


def seed_compared() -> tuple[Method, ...]:
    return tuple(m for m in METHODS if m.seed_compared)


def trajectory_method() -> Method | None:
    return next((m for m in METHODS if m.trajectory), None)


def label(name: str) -> str:
    """A generator's label from its name alone: "Lines 2-step", "CD (lines) 1-step", "teacher DDIM-32"."""
    if name == "teacher":
        return "the teacher"
    if m := re.fullmatch(r"teacher_(\w+?)(\d+)", name):
        return f"teacher {m.group(1).upper()}-{m.group(2)}"
    if m := re.fullmatch(r"(\w+?)_(\d+)step", name):
        prefix, k = m.group(1), m.group(2)
        for method in METHODS:
            if prefix == method.name:
                return f"{method.label} {k}-step"
            if prefix.startswith(method.name + "_"):
                return f"{method.label} ({prefix[len(method.name) + 1 :]}) {k}-step"
    return name
