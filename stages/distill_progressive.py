"""Stage distill_progressive: progressive distillation from the teacher, halving steps each round.

Round by round, a student initialised from the current teacher learns to match two teacher DDIM
steps with one, from pd.start_steps down to pd.end_steps. Every round's student is saved under
models/pd/<N>step (diffusers folders whose scheduler config carries the student's prediction
type); finished rounds wait in scratch/, so a killed run resumes at the round it was in.
"""

from lines_model import pd_training, preflight, provenance, runtime
from lines_model.cli import run_stage
from lines_model.teachers import load_teacher


def main(params) -> None:
    preflight.check(params)
    made_from = provenance.made_from("distill_progressive", params, ["data/pairs"])
    runtime.set_threads(params.runtime)
    teacher = load_teacher(params.teacher.model, params.teacher.revision, device=runtime.state().device)
    pd_training.distill(params, teacher, pairs_dir="data/pairs", out_dir="models/pd", scratch_dir="scratch",
                        made_from=made_from)


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
