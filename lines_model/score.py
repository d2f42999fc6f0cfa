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

import json
from pathlib import Path

import numpy as np
import torch

from lines_model import atomic
from lines_model.cli import ArgumentParser, fail
from lines_model.errors import InputError
from lines_model.imaging import to_unit

SUFFIXES = (".png",)


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


def score(images01: torch.Tensor, reference01: torch.Tensor, params) -> dict[str, float]:
    from lines_model.evaluation import Features

    if images01.shape[1:] != reference01.shape[1:]:
        raise InputError(f"the images are {tuple(images01.shape[1:])} and the reference {tuple(reference01.shape[1:])}: they must match")
    feats = Features(params.evaluate)
    return feats.metrics(feats(images01), feats(reference01))


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m lines_model score", description=__doc__.splitlines()[0])
    p.add_argument("images", type=Path, help="a folder of PNGs or a uint8 .npy of the images to score")
    p.add_argument("--reference", required=True, help="'heldout' (the evaluation's teacher images), a folder of PNGs or a uint8 .npy")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file whose evaluate section sets the metrics (default: params.yaml)")
    p.add_argument("-o", "--out", type=Path, default=None, help="also write the scores to this .json file")
    args = p.parse_args(argv)
    from lines_model.config import load_params

    try:
        params = load_params(args.params)
        images = read_images(args.images)
        reference = heldout_reference(params) if args.reference == "heldout" else read_images(args.reference)
        scores = score(images, reference, params)
    except (InputError, FileNotFoundError) as e:
        fail(str(e))
    except ValueError as e:  # too few images for the metric settings, named by the metric code
        fail(str(e))
    for k in ("fid", "kid", "precision", "recall"):
        print(f"{k:<10} {scores[k]:.4f} ± {scores[f'{k}_se']:.4f}")
    print(f"({len(images)} images against {len(reference)}; evaluate settings of {args.params})")
    if args.out is not None:
        atomic.write_json(args.out, scores)


if __name__ == "__main__":
    main()
