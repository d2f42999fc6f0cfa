"""Stage distill_progressive: progressive distillation from the teacher, halving steps each round.

Round by round, a student initialised from the current teacher learns to match two teacher DDIM
steps with one, from pd.start_steps down to pd.end_steps. The students listed in pd.keep_steps are
saved under models/pd/<N>step (diffusers folders whose scheduler config carries the student's
prediction type); finished rounds are kept, so an interrupted run resumes at the round it was in.
"""

import copy
import json
import math
import shutil
from pathlib import Path

import torch

from lines_model import pairs, progressive, runtime
from lines_model.cli import run_stage
from lines_model.config import TrainCfg, to_dict
from lines_model.students import load_student, save_student
from lines_model.teachers import load_teacher
from lines_model.training import fingerprint, train


class CleanImages(torch.utils.data.Dataset):
    """The teacher's images from the pairs, as the data distribution x of the distillation loss."""

    def __init__(self, store: pairs.PairStore):
        self.store = store

    def __len__(self):
        return len(self.store)

    def __getitem__(self, i):
        _, clean = self.store[i]
        return clean, clean  # (unused, x): the loss draws its own eps


def main(params, args) -> None:
    pd = params.pd
    runtime.set_threads(params.runtime)
    teacher = load_teacher(params.teacher.model, params.teacher.revision)
    data = CleanImages(pairs.PairStore("data/pairs"))
    sched_cfg = dict(teacher.scheduler_config)
    student_sched_cfg = {**sched_cfg, "prediction_type": pd.prediction}
    net, net_prediction = teacher.unet, sched_cfg["prediction_type"]
    out_root = Path("models/pd")
    n = pd.start_steps // 2
    round_i = 0
    while n >= pd.end_steps:
        fp = fingerprint({"pd": to_dict(pd), "teacher": teacher.sha256, "pairs": data.store.manifest.shards, "round": n})
        done = out_root / f"round_{n}step"
        meta = done / "lines_model.json"
        if meta.exists() and json.loads(meta.read_text()).get("fingerprint") == fp:
            print(f"round {2 * n} -> {n} steps: already done")
            student, _ = load_student(done)
        else:
            student = copy.deepcopy(net).train().requires_grad_(True)
            per_epoch = max(1, len(data) // pd.batch_size)
            cfg = TrainCfg(
                lr=pd.lr, epochs=max(1, math.ceil(pd.iters_per_round / per_epoch)), batch_size=pd.batch_size,
                warmup_steps=pd.warmup_steps, grad_clip=pd.grad_clip, ema_decay=pd.ema_decay, loss=pd.loss,
                seed=pd.seed + round_i, checkpoint_every=10**9,
            )
            loss = progressive.ProgressiveLoss(net.eval().requires_grad_(False), net_prediction, pd.prediction, sched_cfg, n, pd.loss)
            result = train(
                student, loss, data, cfg, params.runtime,
                checkpoint_dir=f"models/pd.ckpt/round_{n}step", fingerprint_extra={"fp": fp}, desc=f"pd {2 * n}->{n}",
            )
            student = result.ema_model
            sidecar = {"kind": "progressive", "steps": n, "teacher_steps": 2 * n, "fingerprint": fp,
                       "final_loss": result.final_loss, "config": to_dict(pd), "teacher": teacher.source}
            save_student(student, done, sidecar, {"scheduler_config.json": json.dumps(student_sched_cfg, indent=2).encode()})
        net, net_prediction = student, pd.prediction
        n //= 2
        round_i += 1
    # Round folders not produced by the current params are stale.
    keep = {f"round_{k}step" for k in [pd.start_steps // 2 ** i for i in range(1, 64)] if k >= pd.end_steps}
    for p in out_root.iterdir():
        if p.is_dir() and p.name.startswith("round_") and p.name not in keep:
            shutil.rmtree(p)


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
