"""Stage train_baseline: naive distillation, the same student always at t = 0, on all pairs."""

from lines_model import preflight, provenance, runtime
from lines_model.cli import run_stage
from lines_model.methods import baseline
from lines_model.methods.base import Layout


def main(params) -> None:
    preflight.check(params)
    runtime.set_threads(params.runtime)
    layout = Layout()
    made_from = provenance.made_from(
        baseline.METHOD.stage, params, [layout.pairs, layout.heldout], keys=baseline.METHOD.recorded
    )
    baseline.METHOD.train(params, layout, made_from=made_from)


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
