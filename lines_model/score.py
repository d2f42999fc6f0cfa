"""Score any images with the pipeline's metrics: FID, KID, precision and recall, each with its standard error.

    python -m lines_model score samples/ --reference heldout            # PNGs vs the held-out teacher images
    python -m lines_model score images.npy --reference data/cifar10-train.npy
    python -m lines_model score a/ --reference b/ -o scores.json

IMAGES and the reference are each a folder of PNGs (as `sample --single` writes them) or a uint8 .npy
array (n, 3, H, W) or (n, H, W, 3); `heldout` means the teacher images the evaluation compares with
(data/heldout, after its first evaluate.count pairs). The feature extractor and the metric settings are
the `evaluate` section of the params file, so the numbers are the ones `metrics/evaluate.json` holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from lines_model import atomic
from lines_model.cli import ArgumentParser, check_writable, fail
from lines_model.errors import InputError
from lines_model.imaging import to_unit

SUFFIXES = (".png",)
# Below this many images in a set the scores are strongly biased (FID's bias grows as the feature
# dimension over the count) and noisy: a warning says so, the scores are still printed.
WARN_BELOW = 500
NEEDS = f"""How many images the metrics need, in each of the two sets (k: evaluate.prc_neighborhood):
  FID        at least 2 (a covariance of the features)
  KID        at least 2; its subsets hold evaluate.kid_subset_size images, cut to the smaller set's count
  precision  more than k: each image's k nearest neighbours; the standard errors look for them within
  recall     halves of a set, so a set needs at least 2 (k + 1) images
Below {WARN_BELOW} images in a set the scores are strongly biased (FID upwards) and noisy: compare
only scores made with the same counts."""


def read_images(path: str | Path) -> torch.Tensor:
    """Images in [0, 1], float32 (n, 3, H, W), from a folder of PNGs (sorted by name) or a uint8 .npy."""
    from PIL import Image, UnidentifiedImageError

    from lines_model.fidelity import load_reference_images

    path = Path(path)
    if path.is_file() and path.suffix == ".npy":
        try:
            return load_reference_images(path)
        except (ValueError, FileNotFoundError) as e:
            raise InputError(str(e)) from None
    if not path.is_dir():
        raise InputError(f"{path}: not a folder of PNGs nor a .npy file")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise InputError(f"{path}: holds no .png images")
    arrays = []
    for f in files:
        try:
            with Image.open(f) as im:
                arrays.append(np.asarray(im.convert("RGB")))
        except (UnidentifiedImageError, OSError) as e:
            raise InputError(f"{f}: not a readable image ({e})") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise InputError(f"{path}: images of several sizes {sorted(shapes)}; they must all be the same size")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)


def heldout_reference(params) -> torch.Tensor:
    """The evaluation's reference set: the held-out teacher images after the first evaluate.count."""
    from lines_model.pairs import PairStore

    _, _, reference = PairStore("data/heldout").split(params.evaluate.count, params.evaluate.reference)
    return to_unit(reference)


def minimum_count(prc_neighborhood: int) -> int:
    """The fewest images a set may hold: precision and recall need each image's `prc_neighborhood`
    nearest neighbours, and their standard errors look for them within halves of the set, so a half
    must hold more than that (uncertainty.shared_replicates); FID and KID need 2."""
    return max(2, 2 * (prc_neighborhood + 1))


def check_counts(images: tuple[str, int], reference: tuple[str, int], cfg) -> list[str]:
    """Refuse a set too small to score, naming it and the count the metrics need; return the warnings
    for sets small enough to bias the scores. `images`, `reference`: (what the set is, its count)."""
    need = minimum_count(cfg.prc_neighborhood)
    for what, n in (images, reference):
        if n < need:
            raise InputError(
                f"{what}: {n} image{'s' * (n != 1)}, too few to score: the metrics need at least {need} "
                f"in each set (precision and recall find each image's {cfg.prc_neighborhood} nearest "
                "neighbours within halves of a set)"
            )
    warnings, smallest = [], min(images[1], reference[1])
    if smallest < WARN_BELOW:
        warnings.append(
            f"{images[1]} images against {reference[1]}: with fewer than {WARN_BELOW} images in a set "
            "the scores are strongly biased (FID upwards) and noisy; compare only scores made with the "
            "same counts"
        )
    if cfg.kid_subset_size > smallest:
        warnings.append(
            f"KID uses subsets of {smallest} images, the smaller set's count, instead of {cfg.kid_subset_size}"
        )
    return warnings


def score(images01: torch.Tensor, reference01: torch.Tensor, params) -> dict[str, float]:
    from lines_model.evaluation import Features

    if images01.shape[1:] != reference01.shape[1:]:
        raise InputError(
            f"the images are {tuple(images01.shape[1:])} and the reference {tuple(reference01.shape[1:])}: "
            f"they must match"
        )
    feats = Features(params.evaluate)
    return feats.metrics(feats(images01), feats(reference01))


def main(argv=None) -> None:
    p = ArgumentParser(
        prog="python -m lines_model score",
        description=__doc__.splitlines()[0],
        epilog=NEEDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", type=Path, help="a folder of PNGs or a uint8 .npy of the images to score")
    p.add_argument(
        "--reference",
        required=True,
        help="'heldout' (the evaluation's teacher images), a folder of PNGs or a uint8 .npy",
    )
    p.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="params file whose evaluate section sets the metrics (default: params.yaml)",
    )
    p.add_argument("-o", "--out", type=Path, default=None, help="also write the scores to this .json file")
    args = p.parse_args(argv)
    from lines_model.config import load_params

    try:
        if args.out is not None:
            check_writable(args.out, "--out")  # before the scoring, which takes minutes on large sets
        params = load_params(args.params)
        images = read_images(args.images)
        reference = heldout_reference(params) if args.reference == "heldout" else read_images(args.reference)
        counts = (str(args.images), len(images)), (f"--reference {args.reference}", len(reference))
        for line in check_counts(*counts, params.evaluate):
            print(f"warning: {line}", file=sys.stderr)
        scores = score(images, reference, params)
    except (InputError, FileNotFoundError) as e:
        fail(str(e))
    except ValueError as e:  # a metric's own refusal of its inputs, should one get past the checks above
        fail(str(e))
    for k in ("fid", "kid", "precision", "recall"):
        print(f"{k:<10} {scores[k]:.4f} ± {scores[f'{k}_se']:.4f}")
    print(f"({len(images)} images against {len(reference)}; evaluate settings of {args.params})")
    if args.out is not None:
        atomic.write_json(args.out, scores)


if __name__ == "__main__":
    main()
