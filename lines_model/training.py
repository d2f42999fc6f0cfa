"""The one training loop shared by every student; only the loss callable differs.

AdamW with linear warmup and cosine decay, gradient clipping, EMA of the weights, Accelerate
for device placement, mixed precision and DDP. The data order of epoch e is a permutation
seeded by (seed, e) and the randomness of step s (e.g. Lines' t) by (seed, s), so a run
resumed from a checkpoint replays exactly what an uninterrupted run would have done.

Checkpoints live in a scratch folder that is no stage output: DVC can restore a stage's
outputs from its cache or run-cache whatever a checkpoint holds, and a checkpoint only ever
resumes a run that was killed (the caller removes it once the outputs are written).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from lines_model import atomic, progress
from lines_model import runtime as rt
from lines_model.config.runtime import RuntimeCfg
from lines_model.config.training import TrainCfg
from lines_model.errors import TrainingDiverged
from lines_model.hashing import fingerprint
from lines_model.optim import ema_copy, warmup_cosine

__all__ = ["Checkpoint", "EpochSampler", "TrainResult", "train"]


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    ema_model: torch.nn.Module


class EpochSampler(torch.utils.data.Sampler):
    """Permutation of range(n) seeded by (seed, epoch), optionally sharded across DDP ranks."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self):
        return iter(self.order(self.epoch)[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


class Checkpoint:
    """Resumable training state in a folder: weights and EMA as safetensors, optimizer state as a
    plain tensor dict (loaded with weights_only=True), and progress as JSON. Written atomically."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.folder, self.fingerprint = Path(folder), fingerprint

    def save(self, model, ema: EMAModel, opt, sched, step: int, losses: list[float], hook=None) -> None:
        with atomic.atomic_dir(self.folder) as tmp:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
            if hook is not None:
                save_file({k: v.contiguous() for k, v in hook.state_dict().items()}, tmp / "hook.safetensors")
            ema_sd = {f"p{i}": p.detach().contiguous() for i, p in enumerate(ema.shadow_params)}
            save_file(ema_sd, tmp / "ema.safetensors")
            torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp / "optimizer.pt")
            (tmp / "state.json").write_text(
                json.dumps(
                    {"fingerprint": self.fingerprint, "step": step, "ema_step": ema.optimization_step, "losses": losses}
                )
            )

    def load(self, model, ema: EMAModel, opt, sched, hook=None) -> tuple[int, list[float]] | None:
        state_path = self.folder / "state.json"
        if not state_path.exists():
            return None
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != self.fingerprint:
            print(f"{self.folder}: checkpoint was made with other params or data; starting afresh")
            return None
        model.load_state_dict(load_file(self.folder / "model.safetensors"))
        if hook is not None:
            hook.load_state_dict(load_file(self.folder / "hook.safetensors"))
        ema_sd = load_file(self.folder / "ema.safetensors")
        for i, p in enumerate(ema.shadow_params):
            p.data.copy_(ema_sd[f"p{i}"])
        ema.optimization_step = state["ema_step"]
        # weights_only=True: a tampered checkpoint cannot run code on load.
        o = torch.load(self.folder / "optimizer.pt", weights_only=True, map_location="cpu")
        opt.load_state_dict(o["opt"])
        sched.load_state_dict(o["sched"])
        return state["step"], state["losses"]


def train(
    model: torch.nn.Module,
    loss_fn: Callable,
    dataset,
    cfg: TrainCfg,
    runtime: RuntimeCfg,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    checkpoint_dir: str | Path,
    identity: dict,
    live=None,
    on_epoch_end: Callable[[int, torch.nn.Module], None] | None = None,
    hook: torch.nn.Module | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train `model` on `dataset` items (noise, clean) with `loss_fn(net, noise, clean, generator)`
    for exactly `steps` optimizer steps, or for `epochs` epochs (give one); the learning rate
    warms up and decays over the whole run. `identity` is what else determines the result (the
    caller's data, network and code); a checkpoint in `checkpoint_dir` is continued only when it
    and the result-changing settings match.

    `hook` is state a method keeps beside the network, such as a target network: its
    `after_step(net)` runs after every optimizer step, and its state_dict is checkpointed with the run."""
    if (steps is None) == (epochs is None):
        raise ValueError("train: give exactly one of steps and epochs")
    acc = rt.accelerator(runtime)
    device = acc.device
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    sampler = EpochSampler(len(dataset), cfg.seed, acc.process_index, acc.num_processes)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=len(sampler) >= cfg.batch_size,
    )
    steps_per_epoch = len(loader)
    steps = steps if steps is not None else epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    lr_at = warmup_cosine(cfg.warmup_steps, steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay)
    # A checkpoint is continued only by a run of the same identity: the caller's (its data, network
    # and code), the training settings that change the result, the length, the world size and precision.
    full_identity = {
        "train": cfg.identity(),
        "steps": steps,
        **identity,
        "world": acc.num_processes,
        "precision": rt.mixed_precision(runtime),
    }
    ckpt = Checkpoint(checkpoint_dir, fingerprint(full_identity))
    resumed = ckpt.load(model, ema, opt, sched, hook)
    step, losses = resumed if resumed else (0, [])
    if resumed and acc.is_main_process:
        print(f"{desc}: resuming at step {step} of {steps} from {checkpoint_dir}", flush=True)
    ema.to(device)
    if hook is not None:
        hook.to(device)
    net, opt = acc.prepare(model, opt)
    if runtime.compile and device.type == "cuda":
        net = torch.compile(net)
    if live is not None and acc.is_main_process:
        # The curves of the steps before a resume: DVC removed the old ones with the stage's outputs.
        for s in range(cfg.log_every, step + 1, cfg.log_every):
            _log(live, s, losses[s - cfg.log_every : s], cfg.lr * lr_at(s))

    bar = progress.bar(total=steps, initial=step, desc=desc, unit="step", disable=not acc.is_main_process)
    epoch = step // steps_per_epoch
    while step < steps:
        sampler.epoch = epoch
        skip = step - epoch * steps_per_epoch  # batches of this epoch already done before a resume
        for b, (noise, clean) in enumerate(loader):
            if b < skip:
                continue
            if step == steps:
                break
            noise = noise.to(device, non_blocking=True)
            clean = clean.to(device, non_blocking=True)
            g = torch.Generator().manual_seed(
                int(np.random.SeedSequence([cfg.seed, step, acc.process_index]).generate_state(1)[0])
            )
            with acc.autocast():
                loss = loss_fn(net, noise, clean, g)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{desc}: loss is {loss.item()} at step {step}; last good checkpoint kept in {checkpoint_dir}. "
                    "Lower the learning rate or check the pairs."
                )
            acc.backward(loss)
            if cfg.grad_clip > 0:
                acc.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            ema.step(acc.unwrap_model(net).parameters())
            if hook is not None:
                hook.after_step(acc.unwrap_model(net))
            step += 1
            losses.append(acc.reduce(loss.detach(), reduction="mean").item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-50:]):.4f}", refresh=False)
            if live is not None and acc.is_main_process and step % cfg.log_every == 0:
                _log(live, step, losses[-cfg.log_every :], sched.get_last_lr()[0])
            if acc.is_main_process and step % cfg.checkpoint_every == 0:
                ckpt.save(acc.unwrap_model(net), ema, opt, sched, step, losses, hook)
        if on_epoch_end is not None and acc.is_main_process:
            on_epoch_end(epoch, ema_copy(acc.unwrap_model(net), ema))
        epoch += 1
    bar.close()
    if acc.is_main_process:
        ckpt.save(acc.unwrap_model(net), ema, opt, sched, step, losses, hook)
    acc.wait_for_everyone()
    return TrainResult(
        steps=step,
        final_loss=float(np.mean(losses[-50:])) if losses else float("nan"),
        ema_model=ema_copy(acc.unwrap_model(net), ema),
    )


def _log(live, step: int, losses: list[float], lr: float) -> None:
    """One row of the curves: the mean loss of the optimizer steps up to `step`, and the learning rate there.

    dvclive numbers rows by its own counter, one per next_step(), which with a row every log_every
    steps is not the optimizer step; setting the counter to `step` makes the curves' step column and
    metrics.json's "step" the optimizer step (Live.end() keeps the last logged one)."""
    live.step = step
    live.log_metric("train/loss", float(np.mean(losses)))
    live.log_metric("train/lr", lr)
    live.next_step()
