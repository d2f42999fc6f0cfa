"""Stage train_lines: the Lines Model student on the subset (X_t = t*C + (1-t)*N, target C)."""

from lines_model import preflight, provenance, runtime
from lines_model.cli import run_stage
from lines_model.methods import lines
from lines_model.methods.base import Layout


def main(params) -> None:
    preflight.check(params)
    runtime.set_threads(params.runtime)
    layout = Layout()
    made_from = provenance.made_from(
        lines.METHOD.stage, params, [layout.pairs, layout.heldout, layout.subset], keys=lines.METHOD.recorded
    )
    lines.METHOD.train(params, layout, made_from=made_from)


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
