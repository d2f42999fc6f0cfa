"""Stage evaluate: teacher, Lines (1 and 2 steps), baseline and PD students on the same held-out noise.

Writes metrics/evaluate.json and the figures under plots/ (comparison grid, trajectory, 64
uncurated samples per generator, FID/speedup bars, and a per-generator table for `dvc plots`).
"""

import json
from pathlib import Path

import torch

from lines_model import atomic, pairs, plots, progressive, runtime, samplers
from lines_model.cli import run_stage
from lines_model.config import ConfigError
from lines_model.evaluation import METRIC_KEYS, GeneratorSpec, evaluate, to_unit
from lines_model.students import load_student
from lines_model.teachers import load_teacher

LABELS = {"teacher": "teacher", "lines_1step": "Lines 1-step", "baseline_1step": "baseline 1-step", "pd_1step": "PD 1-step", "pd_4step": "PD 4-step"}


def build_generators(params, device):
    p, rt_cfg = params.pairs, params.runtime
    teacher = load_teacher(params.teacher.model, params.teacher.revision, device=device)
    t_unet = runtime.prepare_inference(teacher.unet, device, rt_cfg)
    sample = samplers.teacher_sampler(p.sampler)
    specs = [GeneratorSpec("teacher", p.steps, lambda n: sample(t_unet, teacher.scheduler_config, n, p.steps, order=p.order, lambda_min=p.lambda_min))]
    lines, meta = load_student("models/lines", device)
    lines = runtime.prepare_inference(lines, device, rt_cfg)
    t_scale = meta.get("t_scale", params.student.t_scale)
    for k in params.evaluate.lines_steps:
        specs.append(GeneratorSpec(f"lines_{k}step", k, lambda n, k=k: samplers.lines_sample(lines, n, k, t_scale=t_scale)))
    base, _ = load_student("models/baseline", device)
    base = runtime.prepare_inference(base, device, rt_cfg)
    specs.append(GeneratorSpec("baseline_1step", 1, lambda n: samplers.lines_sample(base, n, 1)))
    for k in sorted(params.pd.keep_steps):
        folder = Path(f"models/pd/round_{k}step")
        pd_net, _ = load_student(folder, device)
        pd_net = runtime.prepare_inference(pd_net, device, rt_cfg)
        cfg = json.loads((folder / "scheduler_config.json").read_text())
        specs.append(GeneratorSpec(f"pd_{k}step", k, lambda n, net=pd_net, cfg=cfg, k=k: progressive.sample(net, cfg, n, k)))
    return specs, lines, t_scale


def main(params, args) -> None:
    e = params.evaluate
    runtime.set_threads(params.runtime)
    device = runtime.state().device
    held = pairs.PairStore("data/heldout")
    if e.count + e.reference > len(held):
        raise ConfigError(f"evaluate.count + evaluate.reference ({e.count} + {e.reference}) exceeds the {len(held)} held-out pairs (pairs.heldout)")
    noise, teacher_images = held.take(range(e.count))
    _, reference = held.take(range(e.count, e.count + e.reference))
    specs, lines, t_scale = build_generators(params, device)
    fidelity = dict(
        feature_extractor=e.feature_extractor,
        feature_dir=e.feature_dir if e.feature_extractor == "shapes-features" else None,
        kid_subset_size=e.kid_subset_size,
        prc_neighborhood=e.prc_neighborhood,
    )
    with torch.no_grad():
        metrics, images = evaluate(
            specs, noise, teacher_images, reference, batch_size=e.batch_size,
            speed_batch=e.speed_batch, speed_repeats=e.speed_repeats, fidelity_kwargs=fidelity,
        )
    metrics_out = {name: {k: m[k] for k in METRIC_KEYS} for name, m in metrics.items()}
    atomic.write_json("metrics/evaluate.json", metrics_out)
    atomic.write_json("plots/generators.json", [{"generator": n, **m} for n, m in metrics_out.items()])

    cols = e.grid_columns
    rows = {f"{LABELS[n]}{' (' + str(metrics[n]['nfe']) + ' NFE)' if n == 'teacher' else ''}": images[n][:cols] for n in LABELS if n in images}
    plots.comparison_grid(rows, "plots/comparison.png")
    for name, x in images.items():
        plots.save_grid(x[:64], f"plots/samples/{name}.png", nrow=8)
    plots.metric_bars(metrics_out, "plots/fid_speedup.png")

    # Trajectory: inputs X_t = t*C + (1-t)*N on the line to the teacher's image, and S(X_t, t).
    k = 4
    n4, c4 = noise[:k].to(device), teacher_images[:k].to(device)
    xs, preds = [], []
    with torch.no_grad():
        for t in e.trajectory_ts:
            x_t = t * c4 + (1 - t) * n4
            xs.append(x_t)
            preds.append(lines(x_t, torch.tensor(t * t_scale, device=device)).sample.float())
    plots.trajectory_figure(
        to_unit(torch.stack(xs, 1).cpu()), to_unit(torch.stack(preds, 1).cpu()), to_unit(c4.cpu()), list(e.trajectory_ts), "plots/trajectory.png"
    )
    print(json.dumps(metrics_out, indent=1))


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
