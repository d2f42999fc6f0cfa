"""Stage train_baseline: naive distillation on all pairs (input N, t = 0, target C)."""

from lines_model import student_training
from lines_model.cli import run_stage
from lines_model.losses import BaselineLoss


def main(params, args) -> None:
    cfg = params.train_baseline
    student_training.run(params, name="baseline", cfg=cfg, loss_fn=BaselineLoss(cfg.loss), kind="baseline")


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
