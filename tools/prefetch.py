"""Fetch what the CIFAR-10 experiment downloads, once, on a machine with internet access.

    python -m tools.prefetch [--inception-weights [PATH]] [--cifar10-train [PATH]] [--teacher [DIR]]

(from the repository root; each option takes its default path when given without one). Then copy
the repository, with these files, to the offline cluster:

- `--inception-weights`: torch-fidelity's Inception-v3 weights from its release URL (the SHA-256
  prefix in the file name is checked), to `teachers/inception/<torch-fidelity's file name>`; the
  evaluation reads it through `lines_model.fidelity` (`weights_path`), weights-only.
- `--cifar10-train`: CIFAR-10 train through torch-fidelity's registered input "cifar10-train"
  (torchvision's download), as one uint8 array (50000, 3, 32, 32) in `data/cifar10-train.npy`,
  the FID reference `lines_model.fidelity.load_reference_images` reads.
- `--teacher`: google/ddpm-cifar10-32 (*.json and *.safetensors only: pickled weights are never
  fetched) into `teachers/ddpm-cifar10-32`.

Every output is written atomically; an existing one is kept unless `--force`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import snapshot_download
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.utils import prepare_input_from_id

from lines_model import atomic
from lines_model.cli import ArgumentParser, fail
from lines_model.extractors import INCEPTION_EXTRACTOR
from lines_model.fidelity import extract_features

# torch-fidelity's own file name: torch.hub's "<name>-<sha256 prefix>.pth".
INCEPTION_WEIGHTS = Path("teachers/inception") / URL_INCEPTION_V3.rsplit("/", 1)[-1]
CIFAR10_TRAIN = Path("data/cifar10-train.npy")
CIFAR10_TRAIN_SIZE = 50000
TEACHER_ID = "google/ddpm-cifar10-32"
TEACHER_DIR = Path("teachers/ddpm-cifar10-32")


def download_inception_weights(path: str | Path) -> Path:
    """Download torch-fidelity's Inception-v3 weights to `path`, check them, and return the path."""
    match = torch.hub.HASH_REGEX.search(INCEPTION_WEIGHTS.name)  # the SHA-256 prefix in the name
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        torch.hub.download_url_to_file(URL_INCEPTION_V3, str(tmp), hash_prefix=match.group(1) if match else None)
        # The file must load weights-only and fit torch-fidelity's net, as the evaluation will need.
        extract_features(torch.rand(2, 3, 32, 32), INCEPTION_EXTRACTOR, weights_path=tmp)
    return path


def to_uint8_images(items: Sequence) -> np.ndarray:
    """Stack a data set's images into one uint8 array (n, 3, H, W).

    `items[i]` is an image or a tuple whose first element is one (torchvision's (image, label));
    an image is a PIL image (converted to RGB) or a uint8 tensor / array (3, H, W), as
    torch-fidelity's registered inputs return them.
    """
    out = None
    for i in range(len(items)):
        item = items[i]
        img = item[0] if isinstance(item, tuple) else item
        if isinstance(img, Image.Image):
            a = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
        elif torch.is_tensor(img) or isinstance(img, np.ndarray):
            a = np.asarray(img)
        else:
            raise ValueError(f"items[{i}]: expected a PIL image or a uint8 (3, H, W) tensor, got {type(img).__name__}")
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] != 3:
            raise ValueError(f"items[{i}]: expected a uint8 image (3, H, W), got {a.dtype} {a.shape}")
        if out is None:
            out = np.empty((len(items), *a.shape), dtype=np.uint8)
        elif a.shape != out.shape[1:]:
            raise ValueError(f"items[{i}]: image shape {a.shape} differs from the first one's {out.shape[1:]}")
        out[i] = a
    if out is None:
        raise ValueError("items: no images")
    return out


def write_images(path: str | Path, items: Sequence) -> Path:
    """Write `to_uint8_images(items)` to `path` as one .npy array, atomically; return the path."""
    images = to_uint8_images(items)
    path = Path(path)
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, images)  # a file object: np.save would append ".npy" to the temporary name
    return path


def fetch_cifar10_train(path: str | Path, datasets_root: str | Path | None = None) -> Path:
    """CIFAR-10 train, through torch-fidelity's registered input, to a uint8 .npy (50000, 3, 32, 32)."""
    kwargs = {"datasets_download": True, "verbose": True}
    if datasets_root is not None:  # else torch-fidelity's default, $TORCH_HOME/fidelity_datasets
        kwargs["datasets_root"] = str(datasets_root)
    dataset = prepare_input_from_id("cifar10-train", **kwargs)
    if len(dataset) != CIFAR10_TRAIN_SIZE:
        raise RuntimeError(f"cifar10-train has {len(dataset)} images, expected {CIFAR10_TRAIN_SIZE}")
    return write_images(path, dataset)


def download_teacher(folder: str | Path, repo_id: str = TEACHER_ID, revision: str | None = None) -> Path:
    """Download the hub model `repo_id` (*.json, *.safetensors) into `folder` (replaced); return it."""
    folder = Path(folder)
    with atomic.atomic_dir(folder) as tmp:
        snapshot_download(repo_id, revision=revision, allow_patterns=["*.json", "*.safetensors"], local_dir=tmp)
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # the hub client's bookkeeping, not the model
        if not any(tmp.rglob("*.safetensors")):
            raise RuntimeError(
                f"{repo_id} (revision {revision or 'main'}) has no .safetensors weights; "
                "pickled weights are not fetched"
            )
    return folder


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m tools.prefetch", description=__doc__.splitlines()[0])
    p.add_argument(
        "--inception-weights",
        nargs="?",
        type=Path,
        const=INCEPTION_WEIGHTS,
        default=None,
        metavar="PATH",
        help=f"torch-fidelity's Inception-v3 weights (default {INCEPTION_WEIGHTS})",
    )
    p.add_argument(
        "--cifar10-train",
        nargs="?",
        type=Path,
        const=CIFAR10_TRAIN,
        default=None,
        metavar="PATH",
        help=f"CIFAR-10 train as a uint8 .npy (default {CIFAR10_TRAIN})",
    )
    p.add_argument(
        "--datasets-root",
        type=Path,
        default=None,
        help="where torchvision keeps the CIFAR-10 download (default: torch-fidelity's)",
    )
    p.add_argument(
        "--teacher",
        nargs="?",
        type=Path,
        const=TEACHER_DIR,
        default=None,
        metavar="DIR",
        help=f"{TEACHER_ID} (default {TEACHER_DIR})",
    )
    p.add_argument("--teacher-revision", default=None, help="hub revision of the teacher (default main)")
    p.add_argument("--force", action="store_true", help="fetch again what is already there")
    args = p.parse_args(argv)
    jobs = [
        (args.inception_weights, download_inception_weights),
        (args.cifar10_train, lambda out: fetch_cifar10_train(out, args.datasets_root)),
        (args.teacher, lambda out: download_teacher(out, revision=args.teacher_revision)),
    ]
    if all(out is None for out, _ in jobs):
        p.error("nothing to fetch: give --inception-weights, --cifar10-train and/or --teacher")
    for out, fetch in jobs:
        if out is None:
            continue
        if out.exists() and not args.force:
            print(f"{out}: exists, kept (--force to fetch again)")
            continue
        try:
            print(fetch(out))
        except OSError as e:  # offline, DNS failure, refused connection, HTTP errors of the hub client
            fail(
                f"{out}: could not fetch it ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                "run this on a machine with network access and copy the file over"
            )


if __name__ == "__main__":
    main()
