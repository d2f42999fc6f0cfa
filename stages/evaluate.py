"""Stage evaluate: every generator on the same held-out noise.

The teacher (pairs sampler, and DDIM at pd.start_steps), Lines (evaluate.lines_steps), the
baseline and the PD students (evaluate.pd_steps). Writes metrics/evaluate.json,
metrics/differences.json (differences between generators, with paired standard errors) and the
figures under plots/ (comparison grid, FID/speedup bars, both students' loss curves, trajectory, 64
uncurated samples per generator).
"""

import json

from lines_model import atomic, evaluation, fidelity, pairs, preflight, provenance, report, runtime
from lines_model.cli import run_stage
from lines_model.teachers import load_teacher


def main(params) -> None:
    e = params.evaluate
    preflight.check(params)
    provenance.check_inputs(params, ["data/heldout", "models/lines", "models/baseline", "models/pd"])
    runtime.set_threads(params.runtime)
    device = runtime.state().device
    heldout = pairs.PairStore("data/heldout")
    noise, teacher_images, reference = heldout.split(e.count, e.reference)
    teacher = load_teacher(params.teacher.model, params.teacher.revision, device=device)
    specs, lines = evaluation.build_generators(params, teacher, lines_dir="models/lines", baseline_dir="models/baseline", pd_dir="models/pd",
                                               device=device, pairs_precision=heldout.manifest.precision)
    data = {}
    if e.data_reference:
        data = dict(data_reference=fidelity.load_reference_images(e.data_reference), data_noise=evaluation.data_noise(e.data_count, noise.shape[1:], params.pairs.seed))
    metrics, images, diffs = evaluation.evaluate(specs, noise, teacher_images, reference, e, **data)
    k = e.trajectory_samples
    traj = (*evaluation.trajectory(lines, noise[:k], teacher_images[:k], e.trajectory_ts), teacher_images[:k])
    losses = {k: f"training/{k}/plots/metrics/train/loss.tsv" for k in ("lines", "baseline")}
    report.write(metrics, images, traj, e.trajectory_ts, loss_files=losses, metrics_file="metrics/evaluate.json", plots_dir="plots", grid_columns=e.grid_columns)
    atomic.write_json("metrics/differences.json", diffs)  # paired errors: the generators share noise and reference
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
