"""Progressive distillation as a procedure: rounds of the shared training loop.

Round by round, a student initialised from the current teacher learns to match two teacher DDIM
steps with one (target.PDLoss), from pd.start_steps down to pd.end_steps. Every
round's student is kept: `<out>/<N>step` is a diffusers folder whose scheduler config carries the
student's prediction type (parametrisation.student_prediction of the teacher's). Finished rounds wait
in a scratch folder keyed by what determines them,
so a killed run resumes at the round it was in; they are removed once the output is written.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path


from lines_model import atomic, pairs, parametrisation, runtime
from lines_model.config import Params
from lines_model.methods.pd import target
from lines_model.students import SIDECAR, load_unet, save_student
from lines_model.provenance import RECORD, scratch_key
from lines_model.training import train


def round_identity(params: Params, teacher_sha256: str, shards: dict, n: int) -> dict:
    """What determines the student of the round that ends at n steps: not pd.end_steps (it only
    says when to stop), nor the logging and checkpoint settings."""
    train_cfg = {k: v for k, v in params.pd.identity().items() if k != "end_steps"}
    return {"train": train_cfg, "teacher": teacher_sha256, "pairs": shards, "round": n}


def distill(
    params: Params,
    teacher,
    *,
    pairs_dir: str | Path,
    out_dir: str | Path,
    scratch_dir: str | Path,
    entry: str | Path = __file__,
    made_from: dict | None = None,
) -> None:
    """Run every round and write each round's student to `out_dir/<N>step`, with `made_from`
    (provenance.made_from), where given, in its sidecar; a round's scratch folder is keyed by the
    code `entry` runs, among the rest."""
    pd = params.pd
    data = pairs.CleanImages(pairs.PairStore(pairs_dir))
    sched_cfg = dict(teacher.scheduler_config)
    # Every round's student starts as a copy of the network before it, so all read the teacher's output
    # the same way: v and x as they are, epsilon in a form that can reach an image in one step.
    prediction = parametrisation.student_prediction(sched_cfg["prediction_type"])
    student_sched_cfg = {**sched_cfg, "prediction_type": prediction}
    net, net_prediction = teacher.unet, sched_cfg["prediction_type"]
    scratch, done = Path(scratch_dir), {}
    for i, n in enumerate(pd.round_steps()):
        fp = scratch_key(
            round_identity(params, teacher.sha256, data.store.manifest.shards, n),
            entry=entry,
            sections=("teacher", "pd", "runtime"),
            precision=runtime.mixed_precision(params.runtime),
        )
        folder = scratch / f"pd-{n}step-{fp}"
        if (folder / "diffusion_pytorch_model.safetensors").exists():
            print(f"round {2 * n} -> {n} steps: already done ({folder})")
            student = load_unet(folder, next(net.parameters()).device)
        else:
            student = copy.deepcopy(net).float().train().requires_grad_(True)
            loss = target.PDLoss(net.eval().requires_grad_(False), net_prediction, prediction, sched_cfg, n, pd.loss)
            result = train(
                student,
                loss,
                data,
                dataclasses.replace(pd, seed=pd.seed + i),
                params.runtime,
                steps=pd.iters_per_round,
                checkpoint_dir=f"{folder}.ckpt",
                identity={"round": fp},
                desc=f"pd {2 * n}->{n}",
            )
            student = result.ema_model
            sidecar = {
                "method": "pd",
                "steps": n,
                "teacher_steps": 2 * n,
                "final_loss": result.final_loss,
                "prediction_type": prediction,
                "config": dataclasses.asdict(pd),
                "teacher": teacher.source,
            }
            save_student(student, folder, sidecar, student_sched_cfg)
            shutil.rmtree(f"{folder}.ckpt", ignore_errors=True)
        done[n] = folder
        net, net_prediction = student, prediction
    with atomic.atomic_dir(out_dir) as tmp:
        for n, folder in done.items():
            shutil.copytree(folder, tmp / f"{n}step")
            if made_from is not None:
                # Recorded here rather than when the round finished: a finished round in scratch
                # serves any pd.end_steps (round_identity), so its record is this run's.
                sidecar = tmp / f"{n}step" / SIDECAR
                atomic.write_json(sidecar, {**json.loads(sidecar.read_text()), RECORD: made_from})
    for folder in done.values():
        shutil.rmtree(folder, ignore_errors=True)
