"""The original project's teacher sampling loop, re-created as the baseline of the pairs and GPU sections."""

from __future__ import annotations


def original_loop(unet, scheduler_config: dict, noise, steps: int, batch: int):
    """A faithful re-creation of the original sampling loop: diffusers DDIM, eta 0, fp32, a plain loop
    over batches of `batch`, with a fresh scheduler per batch as the original built one."""
    import torch

    from lines_model.samplers import ddim_scheduler

    outs = []
    with torch.no_grad():
        for i in range(0, len(noise), batch):
            scheduler = ddim_scheduler(scheduler_config, steps)
            x = noise[i : i + batch].clone() * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                out = unet(x, t).sample
                x = scheduler.step(out, t, x, eta=0.0).prev_sample
            outs.append(x)
    return torch.cat(outs)
