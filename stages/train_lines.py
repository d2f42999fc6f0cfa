"""Stage train_lines: the Lines Model student on the subset (X_t = t*C + (1-t)*N, target C)."""

from lines_model import preflight, runtime
from lines_model.cli import run_stage
from lines_model.methods import lines
from lines_model.methods.base import Layout


def main(params) -> None:
    preflight.check(params)
    runtime.set_threads(params.runtime)
    lines.METHOD.train(params, Layout())


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
