"""Stage evaluate: every generator on the same held-out noise.

The teacher (pairs sampler, and each method's teacher-side generators such as DDIM at
pd.start_steps) and every method's students (methods.registry). Writes metrics/evaluate.json,
metrics/differences.json (differences between generators, with paired standard errors) and the
figures under plots/ (comparison grid, FID/speedup bars, the students' loss curves, trajectory, 64
uncurated samples per generator), and prints the results table (lines_model.results).
"""

from lines_model import atomic, evaluation, fidelity, pairs, preflight, provenance, report, runtime
from lines_model.cli import run_stage
from lines_model.methods import registry
from lines_model.methods.base import Layout, generator_name
from lines_model.results import table
from lines_model.teachers import load_teacher, read_configs


def main(params) -> None:
    e, layout = params.evaluate, Layout()
    preflight.check(params)
    registry.check(params, *read_configs(params.teacher.model, params.teacher.revision))
    provenance.check_inputs(params, [layout.heldout, *(layout.model(m.name) for m in registry.METHODS)])
    runtime.set_threads(params.runtime)
    device = runtime.state().device
    heldout = pairs.PairStore(layout.heldout)
    noise, teacher_images, reference = heldout.split(e.count, e.reference)
    teacher = load_teacher(params.teacher.model, params.teacher.revision, device=device)
    specs = registry.generators(params, teacher, layout, device=device, pairs_precision=heldout.manifest.precision)
    data = {}
    if e.data_reference:
        data = dict(
            data_reference=fidelity.load_reference_images(e.data_reference),
            data_noise=evaluation.data_noise(e.data_count, noise.shape[1:], params.pairs.seed),
        )
    metrics, images, diffs = evaluation.evaluate(
        specs, noise, teacher_images, reference, e, differences=registry.differences(params), **data
    )
    traj, along = None, registry.trajectory_method()
    if along is not None:
        k = e.trajectory_samples
        student = next(g.model for g in specs if g.name == generator_name(along.name, 1))
        traj = (*evaluation.trajectory(student, noise[:k], teacher_images[:k], e.trajectory_ts), teacher_images[:k])
    losses = {m.name: layout.loss_curve(m.name) for m in registry.METHODS if m.curves}
    report.write(
        metrics,
        {g.name: g.label for g in specs},
        images,
        traj,
        e.trajectory_ts,
        loss_files=losses,
        metrics_file="metrics/evaluate.json",
        plots_dir="plots",
        grid_columns=e.grid_columns,
    )
    atomic.write_json("metrics/differences.json", diffs)  # paired errors: the generators share noise and reference
    print(table(metrics))
    print(
        "wrote metrics/evaluate.json, metrics/differences.json and plots/; "
        "`python -m lines_model results --findings` says what they show"
    )


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
