"""Naive distillation (Luhman & Luhman 2021): the Lines student trained at t = 0 only, on all pairs.

It regresses the teacher's image C from its noise N; it samples in one step.
"""

from __future__ import annotations

from lines_model.config import Params
from lines_model.losses import BaselineLoss
from lines_model.methods import one_step
from lines_model.provenance import TRAIN_KEYS, section_keys
from lines_model.methods.base import Layout, Method, generator_name

NAME = "baseline"


def train(params: Params, layout: Layout, *, out=None, live=None, made_from=None) -> None:
    one_step.train_student(
        params,
        NAME,
        "train_baseline",
        BaselineLoss(params.train_baseline.loss),
        layout,
        entry=__file__,
        subset=False,
        out=out,
        live=live,
        made_from=made_from,
    )


def load(folder, meta: dict | None = None, steps: int | None = None, **kw):
    return one_step.load(folder, method=NAME, label=METHOD.label, steps=steps, max_steps=1, **kw)


def generators(params: Params, folder, **kw):
    return [load(folder, **kw)]


def differences(params: Params):
    return [(generator_name(NAME, 1), "pd_1step")]


RECORDED = ("teacher", "student", *section_keys("train_baseline", *TRAIN_KEYS, "epochs"), "runtime")

METHOD = Method(
    name=NAME,
    label="baseline",
    section="train_baseline",
    stage="train_baseline",
    recorded=RECORDED,
    train=train,
    steps=lambda params: (1,),
    generators=generators,
    load=load,
    differences=differences,
    seed_compared=True,
)
