"""Stage distill_consistency: consistency distillation of the teacher's ODE, one model per cd.init.

From a copy of the teacher (the paper's start) and from the trained Lines student, on the pairs'
images; each model is saved under models/cd/<init> and samples in one or a few steps.
"""

from lines_model import preflight, provenance, runtime
from lines_model.cli import run_stage
from lines_model.methods import cd
from lines_model.methods.base import Layout
from lines_model.teachers import read_configs


def main(params) -> None:
    preflight.check(params)
    cd.METHOD.check(params, *read_configs(params.teacher.model, params.teacher.revision))
    runtime.set_threads(params.runtime)
    layout = Layout()
    made_from = provenance.made_from(
        cd.METHOD.stage, params, [layout.pairs, layout.model("lines")], keys=cd.METHOD.recorded
    )
    cd.METHOD.train(params, layout, made_from=made_from)


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
