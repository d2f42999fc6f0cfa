"""Generate images with a trained student folder, using only what the folder holds.

    python -m lines_model.sample models/lines -n 64 --seed 0 -o samples.png [--steps 2]
    python -m lines_model.sample models/pd/4step -n 16 -o pd.png
    python -m lines_model.sample models/baseline -n 8 -o out/ --single      # one PNG per image

Works for Lines (any --steps, default 1), baseline (1 step) and progressive-distillation
students (their own step count). The noise of image i is seeded by (seed, i), as the pairs' is,
so the same seed gives the same images on any machine and batch size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lines_model import noise as noise_mod, plots, progressive, samplers
from lines_model.errors import InputError
from lines_model.imaging import to_unit
from lines_model.students import load_scheduler_config, load_student, load_unet, read_sidecar


def sampler_for(folder: str | Path, steps: int | None, device="cpu"):
    """(noise -> images in [-1, 1], sample shape, steps used) for a student folder."""
    meta = read_sidecar(folder)
    kind = meta.get("kind")
    if kind == "progressive":
        own = meta.get("steps")
        if not isinstance(own, int) or own < 1:
            raise InputError(f"{Path(folder) / 'lines_model.json'}: steps {own!r} is not a progressive-distillation student's")
        if steps not in (None, own):
            raise ValueError(f"--steps: this progressive-distillation student samples in exactly {own} steps")
        net, cfg = load_unet(folder, device), load_scheduler_config(folder)
        return (lambda n: progressive.sample(net, cfg, n, own)), net.config, own
    if kind not in ("lines", "baseline"):
        raise InputError(f"{folder}: unknown student kind {kind!r}")
    if kind == "baseline" and steps not in (None, 1):
        raise ValueError("--steps: the baseline student is trained at t = 0 only and samples in 1 step")
    k = steps or 1
    if k < 1:
        raise ValueError(f"--steps: must be >= 1, got {k}")
    student, _ = load_student(folder, device)
    return (lambda n: samplers.lines_sample(student, n, k)), student.unet.config, k


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a student folder (models/lines, models/baseline, models/pd/<N>step)")
    p.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="Lines only: k-step sampling along the line")
    p.add_argument("-o", "--out", type=Path, required=True, help="a .png grid, or a folder with --single")
    p.add_argument("--single", action="store_true", help="write one PNG per image into the --out folder")
    p.add_argument("--nrow", type=int, default=8, help="images per grid row")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="default: cuda when present")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("-n: must be >= 1")
    try:
        fn, cfg, k = sampler_for(args.folder, args.steps, args.device)
    except (InputError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    z = noise_mod.noise_for(range(args.n), (cfg.in_channels, size, size), args.seed, noise_mod.EVAL)
    with torch.no_grad():
        images = to_unit(fn(z).cpu())
    if args.single:
        for i, x in enumerate(images):
            plots.save_grid(x[None], args.out / f"{i:05d}.png", nrow=1, padding=0)
    else:
        plots.save_grid(images, args.out, nrow=args.nrow)
    print(f"wrote {args.n} images ({k} step{'s' * (k > 1)}) to {args.out}")


if __name__ == "__main__":
    main()
