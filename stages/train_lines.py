"""Stage train_lines: the Lines Model student on the subset (X_t = t*C + (1-t)*N, target C)."""

from lines_model import preflight, provenance, runtime
from lines_model.cli import run_stage
from lines_model.student_training import train_student
from lines_model.teachers import load_teacher


def main(params) -> None:
    preflight.check(params)
    made_from = provenance.made_from("train_lines", params, ["data/pairs", "data/heldout", "data/subset.json"])
    runtime.set_threads(params.runtime)
    teacher = load_teacher(params.teacher.model, params.teacher.revision) if params.student.init == "teacher" else None
    train_student(
        params, "lines", pairs_dir="data/pairs", heldout_dir="data/heldout", subset_file="data/subset.json", teacher=teacher,
        out_dir="models/lines", live_dir="training/lines", scratch_dir="scratch", made_from=made_from,
    )


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
