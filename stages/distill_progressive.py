"""Stage distill_progressive: progressive distillation from the teacher, halving steps each round.

Round by round, a student initialised from the current teacher learns to match two teacher DDIM
steps with one, from pd.start_steps down to pd.end_steps. Every round's student is saved under
models/pd/<N>step (diffusers folders whose scheduler config carries the student's prediction
type); finished rounds wait in scratch/, so a killed run resumes at the round it was in.
"""

from lines_model import preflight, provenance, runtime
from lines_model.cli import run_stage
from lines_model.methods import pd
from lines_model.methods.base import Layout
from lines_model.teachers import read_configs


def main(params) -> None:
    preflight.check(params)
    pd.METHOD.check(params, *read_configs(params.teacher.model, params.teacher.revision))
    runtime.set_threads(params.runtime)
    layout = Layout()
    made_from = provenance.made_from(pd.METHOD.stage, params, [layout.pairs], keys=pd.METHOD.recorded)
    pd.METHOD.train(params, layout, made_from=made_from)


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
