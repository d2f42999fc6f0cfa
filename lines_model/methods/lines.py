"""Lines Model: pair regression along straight lines, in the spirit of Rectified Flow (Liu et al. 2023).

The student S(X_t, t) learns the teacher's image C from X_t = t*C + (1-t)*N, t drawn from
train_lines.t_dist, on the subset of the pairs; it samples in one step from t = 0, or in k steps
re-noising along the same line (samplers.lines_sample).
"""

from __future__ import annotations

from lines_model.config import Params
from lines_model.losses import LinesLoss
from lines_model.methods import one_step
from lines_model.provenance import TRAIN_KEYS, section_keys
from lines_model.methods.base import Layout, Method, generator_name

NAME = "lines"


def train(params: Params, layout: Layout, *, out=None, live=None, made_from=None) -> None:
    cfg = params.train_lines
    one_step.train_student(
        params,
        NAME,
        "train_lines",
        LinesLoss(cfg.loss, cfg.t_dist),
        layout,
        entry=__file__,
        subset=True,
        out=out,
        live=live,
        made_from=made_from,
    )


def load(folder, meta: dict | None = None, steps: int | None = None, **kw):
    return one_step.load(folder, method=NAME, label=METHOD.label, steps=steps, **kw)


def generators(params: Params, folder, **kw):
    return [load(folder, steps=k, **kw) for k in params.evaluate.lines_steps]


def differences(params: Params):
    """Lines against the baseline at one and two steps, and against PD at the same and twice the NFE."""
    one, two = generator_name(NAME, 1), generator_name(NAME, 2)
    return [(one, "baseline_1step"), (two, "baseline_1step"), (two, "pd_2step"), (two, "pd_4step"), (one, "pd_1step")]


RECORDED = ("teacher", "student", *section_keys("train_lines", *TRAIN_KEYS, "epochs", "t_dist"), "runtime")

METHOD = Method(
    name=NAME,
    label="Lines",
    section="train_lines",
    stage="train_lines",
    recorded=RECORDED,
    train=train,
    steps=lambda params: params.evaluate.lines_steps,
    generators=generators,
    load=load,
    differences=differences,
    seed_compared=True,
    trajectory=True,
)
