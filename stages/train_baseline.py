"""Stage train_baseline: naive distillation on all pairs (input N, t = 0, target C)."""

from lines_model import preflight, provenance, runtime
from lines_model.cli import run_stage
from lines_model.student_training import train_student
from lines_model.teachers import load_teacher


def main(params) -> None:
    preflight.check(params)
    made_from = provenance.made_from("train_baseline", params, ["data/pairs", "data/heldout"])
    runtime.set_threads(params.runtime)
    teacher = load_teacher(params.teacher.model, params.teacher.revision) if params.student.init == "teacher" else None
    train_student(
        params, "baseline", pairs_dir="data/pairs", heldout_dir="data/heldout", teacher=teacher,
        out_dir="models/baseline", live_dir="training/baseline", scratch_dir="scratch", made_from=made_from,
    )


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
