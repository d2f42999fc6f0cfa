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

from lines_model import generators, noise as noise_mod, plots
from lines_model.errors import InputError
from lines_model.imaging import to_unit


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
    if args.nrow < 1:
        p.error("--nrow: must be >= 1")
    try:
        g = generators.load(args.folder, steps=args.steps, device=args.device)
    except (InputError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    k = g.nfe
    z = noise_mod.noise_for(range(args.n), g.sample_shape, args.seed, noise_mod.EVAL)
    with torch.no_grad():
        images = to_unit(g(z).cpu())
    if args.single:
        for i, x in enumerate(images):
            plots.save_grid(x[None], args.out / f"{i:05d}.png", nrow=1, padding=0)
    else:
        plots.save_grid(images, args.out, nrow=args.nrow)
    print(f"wrote {args.n} images ({k} step{'s' * (k > 1)}) to {args.out}")


if __name__ == "__main__":
    main()
