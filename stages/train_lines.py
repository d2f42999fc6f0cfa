"""Stage train_lines: the Lines Model student on the subset (X_t = t*C + (1-t)*N, target C)."""

from lines_model import student_training
from lines_model.cli import run_stage
from lines_model.losses import LinesLoss


def main(params, args) -> None:
    cfg = params.train_lines
    loss = LinesLoss(cfg.loss, cfg.t_dist, params.student.t_scale)
    indices = student_training.load_subset()
    student_training.run(params, name="lines", cfg=cfg, loss_fn=loss, indices=indices, kind="lines")


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
