"""Generate images with a trained student folder (using only what the folder holds) or the teacher.

    python -m lines_model sample models/lines -n 64 --seed 0 -o samples.png [--steps 2]
    python -m lines_model sample models/pd/4step -n 16 -o pd.png
    python -m lines_model sample models/baseline -n 2000 -o out/ --single      # one PNG per image
    python -m lines_model sample teachers/shapes-ddpm -n 16 -o teacher.png     # the pairs' sampler
    python -m lines_model sample teachers/shapes-ddpm --sampler ddim --steps 200 -n 16 -o ddim.png

Lines samples in any --steps (default 1), the baseline in 1, a progressive-distillation student in
its own step count. The teacher samples as the pipeline's pairs do: the sampler, steps, order,
lambda_min and precision of the `pairs` section of the params file, so for the same noise its images
are the pipeline's teacher images; --sampler, --steps, --order and --lambda-min override them one by
one. The noise of image i is seeded by (seed, i), as the pairs' is, so the same seed gives the same
images on any machine and batch size. With --heldout data/heldout the noise is the evaluation's own.
A grid is enlarged for viewing; --single writes each image at the model's own resolution, as an
external metric wants it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from lines_model import generators, imaging, noise as noise_mod, pairs, runtime
from lines_model.cli import ArgumentParser, check_writable, fail
from lines_model.methods import registry
from lines_model.config.runtime import RuntimeCfg
from lines_model.errors import InputError

# A teacher sampler's steps when the params file's pairs use another sampler (or there is no params file).
TEACHER_DEFAULT_STEPS = {"ddim": 200, "dpmsolver++": 22}
DEFAULT_PARAMS = Path("params.yaml")
# What --single refuses as its folder: a name that reads as one image file is almost surely a grid meant
# without --single, and would otherwise become a folder of that name.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def _lambda_min(text: str) -> float | str:
    """--lambda-min: a finite log-SNR, or `none` for the plain grid."""
    if text.lower() in ("none", "null"):
        return "none"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or none, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number or none, got {text!r}")
    return value


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m lines_model sample", description=__doc__.splitlines()[0])
    p.add_argument(
        "folder",
        type=Path,
        help="a student folder (models/lines, models/baseline, models/pd/<N>step) or a teacher model folder",
    )
    p.add_argument("-n", type=int, default=64, help="number of images (default 64)")
    p.add_argument(
        "--seed", type=int, default=0, help="noise seed, 0 or more: image i gets the noise of (seed, i) (default 0)"
    )
    p.add_argument(
        "--heldout",
        type=Path,
        default=None,
        help=(
            "take the noise from this pairs folder instead (data/heldout: the first n are the noises the "
            "evaluation uses)"
        ),
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Lines: k-step sampling along the line (default 1); teacher: sampler steps (default: "
        "pairs.steps, or 22 for dpmsolver++ and 200 for ddim when the pairs use the other sampler)",
    )
    p.add_argument(
        "--sampler",
        choices=sorted(TEACHER_DEFAULT_STEPS),
        default=None,
        help="teacher only: its sampler (default: pairs.sampler)",
    )
    p.add_argument(
        "--order",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="teacher with dpmsolver++ only: solver order (default: pairs.order, or 3)",
    )
    p.add_argument(
        "--lambda-min",
        type=_lambda_min,
        default=None,
        help="teacher with dpmsolver++ only: log-SNR where its step grid starts, or none for the plain grid "
        "(default: pairs.lambda_min, or none)",
    )
    p.add_argument(
        "--params",
        type=Path,
        default=None,
        help="teacher only: the params file whose pairs section sets the sampler "
        "(default: params.yaml where it exists)",
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        help="a .png grid, or with --single a folder (not named like an image) for one .png per image",
    )
    p.add_argument(
        "--single", action="store_true", help="one PNG per image, at the model's resolution, into the --out folder"
    )
    p.add_argument("--nrow", type=int, default=8, help="grid only: images per row (default 8)")
    p.add_argument(
        "--batch-size", type=int, default=64, help="images generated at once (default 64): bounds the memory"
    )
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    return p


def is_teacher(folder: Path) -> bool:
    """A diffusers model folder (flat or pipeline layout) rather than a student, which has lines_model.json."""
    if (folder / "lines_model.json").exists():
        return False
    return (folder / "scheduler_config.json").exists() or (folder / "scheduler" / "scheduler_config.json").exists()


def _check(p: ArgumentParser, args) -> torch.device:
    """Every usage error, before anything is loaded, generated or written."""
    for flag, value in (("-n", args.n), ("--nrow", args.nrow), ("--batch-size", args.batch_size)):
        if value < 1:
            p.error(f"{flag}: must be at least 1, got {value}")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps: must be at least 1, got {args.steps}")
    if args.seed < 0:  # the noise seeds are numpy SeedSequence entropy, which is non-negative
        p.error(f"--seed: must be at least 0, got {args.seed}")
    if args.single:
        if args.out.exists() and not args.out.is_dir():
            p.error(f"--out: {args.out} is a file; with --single it is the folder that receives one PNG per image")
        if args.out.suffix.lower() in IMAGE_SUFFIXES:
            p.error(
                f"--out: {args.out} names an image file; with --single it is the folder that receives one PNG "
                "per image (a name without an image suffix), or leave out --single for one grid"
            )
    elif args.out.suffix.lower() != ".png":
        p.error(f"--out: {args.out} must end in .png (a PNG grid); use --single for one image per file")
    try:
        check_writable(args.out, "--out", folder=args.single)
    except InputError as e:
        p.error(str(e))
    if not is_teacher(args.folder):
        # Flags that only the teacher reads would otherwise be dropped without a word.
        for flag, value in (
            ("--sampler", args.sampler),
            ("--order", args.order),
            ("--lambda-min", args.lambda_min),
            ("--params", args.params),
        ):
            if value is not None:
                p.error(f"{flag}: only for a teacher; {args.folder} is not a teacher model folder")
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as e:
        p.error(f"--device: {e}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device: {args.device} asked for, but this machine has no CUDA GPU")
    if device.type not in ("cpu", "cuda"):
        p.error(f"--device: {args.device} is not cpu or cuda")
    return device


@dataclass(frozen=True)
class TeacherSettings:
    """How the teacher samples, and where its defaults came from (for the closing line)."""

    sampler: str
    steps: int
    order: int
    lambda_min: float | None
    mixed_precision: str  # the pairs' setting (auto | no | bf16 | fp16), resolved per device
    source: str  # "params.yaml's pairs", or "" where nothing came from a params file

    def describe(self) -> str:
        how = self.sampler
        if self.sampler == "dpmsolver++":
            how += f" order {self.order}, lambda_min {self.lambda_min}"
        steps = f"{self.steps} step{'s' * (self.steps > 1)}"
        return f"teacher, {how}, {steps}" + (f", as {self.source}" if self.source else "")


def teacher_settings(args) -> TeacherSettings:
    """The teacher's sampler: the pairs section's where the flags leave it open, so that the teacher as
    a source is the pipeline's teacher (its images, for the same noise, are the pairs' images). The
    pairs' steps, order and lambda_min belong to the pairs' sampler; another --sampler starts from its
    own defaults. Without a params file (none given, no params.yaml here) the defaults are the samplers'."""
    from lines_model.config import load_params

    cfg = None
    if args.params is not None or DEFAULT_PARAMS.exists():
        path = args.params or DEFAULT_PARAMS
        if not path.is_file():
            raise InputError(f"--params: {path}: no such file")
        cfg = load_params(path).pairs
    sampler = args.sampler or (cfg.sampler if cfg else "dpmsolver++")
    own = cfg is not None and sampler == cfg.sampler
    if sampler == "ddim":
        why = "--sampler ddim" if args.sampler else f"pairs.sampler of {args.params or DEFAULT_PARAMS}"
        for flag, value in (("--order", args.order), ("--lambda-min", args.lambda_min)):
            if value is not None:
                raise InputError(
                    f"{flag}: only for the dpmsolver++ sampler; the teacher samples with ddim here ({why})"
                )
    steps = args.steps if args.steps is not None else (cfg.steps if own else TEACHER_DEFAULT_STEPS[sampler])
    order = args.order if args.order is not None else (cfg.order if own else 3)
    if args.lambda_min is not None:
        lambda_min = None if args.lambda_min == "none" else args.lambda_min
    else:
        lambda_min = cfg.lambda_min if own else None
    as_pairs = own and steps == cfg.steps and (sampler == "ddim" or (order, lambda_min) == (cfg.order, cfg.lambda_min))
    source = f"{args.params or DEFAULT_PARAMS}'s pairs" if as_pairs else ""
    if sampler == "ddim":  # it has neither; the values are never read
        order, lambda_min = 1, None
    return TeacherSettings(sampler, steps, order, lambda_min, cfg.mixed_precision if cfg else "no", source)


def _generator(
    args, device: torch.device, settings: TeacherSettings | None, precision: str | None
) -> generators.Generator:
    """The student of the folder, or (with `settings`) the teacher at `precision` (default: the pairs')."""
    if settings is None:
        return registry.load(args.folder, steps=args.steps, device=device)
    from lines_model.teachers import load_teacher

    teacher = load_teacher(str(args.folder), device=device)
    precision = precision or runtime.inference_precision(device, settings.mixed_precision)
    return generators.from_teacher(
        teacher,
        settings.sampler,
        settings.steps,
        order=settings.order,
        lambda_min=settings.lambda_min,
        device=device,
        precision=precision,
        runtime_cfg=RuntimeCfg(mixed_precision="no", compile=False, threads=0),
    )


def main(argv=None) -> None:
    p = parser()
    args = p.parse_args(argv)
    device = _check(p, args)
    try:
        settings = teacher_settings(args) if is_teacher(args.folder) else None
        store = pairs.PairStore(args.heldout) if args.heldout is not None else None
        if store is not None and args.n > len(store):
            raise InputError(f"-n: {args.n} is more than the {len(store)} pairs in {args.heldout}")
        # On held-out noise the teacher runs at the precision those pairs were made at, as the
        # evaluation's teacher row does, so its images are theirs on every device.
        g = _generator(args, device, settings, store.manifest.precision if store is not None else None)
    except (InputError, FileNotFoundError) as e:
        fail(str(e))
    if store is not None:
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
    how = settings.describe() if settings is not None else f"{k} step{'s' * (k > 1)}"
    print(f"wrote {args.n} images ({how}) to {args.out}")


if __name__ == "__main__":
    main()
