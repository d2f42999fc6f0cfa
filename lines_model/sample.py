"""Generate images with a trained student folder (using only what the folder holds) or the teacher.

    python -m lines_model sample models/lines -n 64 --seed 0 -o samples.png [--steps 2]
    python -m lines_model sample models/pd/4step -n 16 -o pd.png
    python -m lines_model sample models/baseline -n 2000 -o out/ --single      # one PNG per image
    python -m lines_model sample teachers/shapes-ddpm --sampler dpmsolver++ --steps 22 -n 16 -o teacher.png

Lines samples in any --steps (default 1), the baseline in 1, a progressive-distillation student in
its own step count, the teacher with --sampler and --steps. The noise of image i is seeded by
(seed, i), as the pairs' is, so the same seed gives the same images on any machine and batch size.
With --heldout data/heldout the noise is the evaluation's own. A grid is enlarged for viewing;
--single writes each image at the model's own resolution, as an external metric wants it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lines_model import generators, imaging, noise as noise_mod, pairs
from lines_model.methods import registry
from lines_model.cli import ArgumentParser, fail
from lines_model.config.runtime import RuntimeCfg
from lines_model.errors import InputError

TEACHER_DEFAULT_STEPS = {"ddim": 200, "dpmsolver++": 22}


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m lines_model sample", description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a student folder (models/lines, models/baseline, models/pd/<N>step) or a teacher model folder")
    p.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--seed", type=int, default=0, help="noise seed: image i gets the noise of (seed, i) (default 0)")
    p.add_argument("--heldout", type=Path, default=None,
                   help="take the noise from this pairs folder instead (data/heldout: the first n are the noises the evaluation uses)")
    p.add_argument("--steps", type=int, default=None,
                   help="Lines: k-step sampling along the line (default 1); teacher: sampler steps (default 22 for dpmsolver++, 200 for ddim)")
    p.add_argument("--sampler", choices=sorted(TEACHER_DEFAULT_STEPS), default="dpmsolver++", help="teacher only: its sampler (default dpmsolver++)")
    p.add_argument("--order", type=int, choices=(1, 2, 3), default=3, help="teacher with dpmsolver++ only: solver order (default 3)")
    p.add_argument("-o", "--out", type=Path, required=True, help="a .png grid, or with --single a folder for one .png per image")
    p.add_argument("--single", action="store_true", help="one PNG per image, at the model's resolution, into the --out folder")
    p.add_argument("--nrow", type=int, default=8, help="grid only: images per row (default 8)")
    p.add_argument("--batch-size", type=int, default=64, help="images generated at once (default 64): bounds the memory")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    return p


def _check(p: ArgumentParser, args) -> torch.device:
    for flag, value in (("-n", args.n), ("--nrow", args.nrow), ("--batch-size", args.batch_size)):
        if value < 1:
            p.error(f"{flag}: must be at least 1, got {value}")
    if args.single:
        if args.out.exists() and not args.out.is_dir():
            p.error(f"--out: {args.out} is a file; with --single it is the folder that receives one PNG per image")
    elif args.out.suffix.lower() != ".png":
        p.error(f"--out: {args.out} must end in .png (a PNG grid); use --single for one image per file")
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as e:
        p.error(f"--device: {e}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device: {args.device} asked for, but this machine has no CUDA GPU")
    if device.type not in ("cpu", "cuda"):
        p.error(f"--device: {args.device} is not cpu or cuda")
    return device


def _generator(args, device: torch.device) -> generators.Generator:
    if (args.folder / "lines_model.json").exists() or not (args.folder / "scheduler_config.json").exists():
        return registry.load(args.folder, steps=args.steps, device=device)
    from lines_model.teachers import load_teacher

    steps = args.steps if args.steps is not None else TEACHER_DEFAULT_STEPS[args.sampler]
    if steps < 1:
        raise InputError(f"--steps: must be at least 1, got {steps}")
    teacher = load_teacher(str(args.folder), device=device)
    return generators.from_teacher(teacher, args.sampler, steps, order=args.order, lambda_min=None, device=device,
                                   runtime_cfg=RuntimeCfg(mixed_precision="no", compile=False, threads=0))


def main(argv=None) -> None:
    p = parser()
    args = p.parse_args(argv)
    device = _check(p, args)
    try:
        g = _generator(args, device)
    except (InputError, FileNotFoundError) as e:
        fail(str(e))
    if args.heldout is not None:
        try:
            store = pairs.PairStore(args.heldout)
        except InputError as e:
            fail(str(e))
        if args.n > len(store):
            fail(f"-n: {args.n} is more than the {len(store)} pairs in {args.heldout}")
        z = store.take(range(args.n))[0]
    else:
        z = noise_mod.noise_for(range(args.n), g.sample_shape, args.seed, noise_mod.EVAL)
    images = g.images(z, args.batch_size)  # [0, 1], on the CPU; one batch of activations at a time
    if args.single:
        for i, x in enumerate(images):
            imaging.save_grid(x[None], args.out / f"{i:05d}.png", nrow=1, scale=1, padding=0)
    else:
        imaging.save_grid(images, args.out, nrow=args.nrow)
    k = g.nfe
    print(f"wrote {args.n} images ({k} step{'s' * (k > 1)}) to {args.out}")


if __name__ == "__main__":
    main()
