"""FID / KID / precision-recall through torch-fidelity: features once, metrics from them.

Two extractors are supported (`lines_model.extractors`):

- "shapes-features": `lines_model.features.ShapesFeatureNet` (penultimate 128-d features),
  loaded from `feature_dir` (default: the shipped `teachers/shapes-features/`);
- "inception-v3-compat": torch-fidelity's own Inception-v3 (the CIFAR-10 metric, 2048-d pool
  features), from a local weights file `weights_path` (read weights-only) or, if that is None,
  torch-fidelity's download.

`extract_features(images, extractor)` runs the extractor once per image set;
`metrics_from_features(gen, ref)` gives {"fid", "kid", "precision", "recall"} with torch-fidelity's
own feature-level functions (their standard errors: `lines_model.uncertainty`).
`compute_fidelity(generated, reference, extractor)` does both from two image tensors in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from lines_model.extractors import (
    INCEPTION_EXTRACTOR,
    SHAPES_EXTRACTOR,
    SUPPORTED_EXTRACTORS,
    load_inception_weights,
    register_shapes_extractor,
)

KID_SUBSET_SIZE = 1000  # torch-fidelity's default, used when kid_subset_size is None


# ---- features ----------------------------------------------------------------------------------


class _UInt8Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _to_uint8(x, what: str, min_count: int = 2) -> torch.Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"{what}: expected a float tensor in [0, 1], got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{what}: expected shape (n, 3, H, W), got {tuple(x.shape)}")
    if x.shape[0] < min_count:
        raise ValueError(f"{what}: need at least {min_count} images, got {x.shape[0]}")
    x = x.detach().to("cpu", torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).contiguous()


def _metric_layer(name: str) -> str:
    # FID, KID and precision/recall share one feature set only if the extractor uses one layer
    # for all three (true for both supported extractors in torch-fidelity 0.4.0).
    cls = FEATURE_EXTRACTORS_REGISTRY[name]
    layers = {cls.get_default_feature_layer_for_metric(m) for m in ("fid", "kid", "prc")}
    if len(layers) != 1:
        raise RuntimeError(f"feature extractor {name!r} uses different layers for fid/kid/prc: {sorted(layers)}")
    return layers.pop()


class _Extractor:
    """One instantiated torch-fidelity extractor and the layer FID/KID/PRC read."""

    def __init__(self, extractor: str, feature_dir, weights_path, *, what: str):
        if extractor not in SUPPORTED_EXTRACTORS:
            raise ValueError(
                f"{what}: {extractor!r} is not supported; expected one of {', '.join(map(repr, SUPPORTED_EXTRACTORS))}"
            )
        kwargs = {}
        if extractor == SHAPES_EXTRACTOR:
            if weights_path is not None:
                raise ValueError(f"weights_path: only used with {what}={INCEPTION_EXTRACTOR!r}, got {weights_path}")
            name = register_shapes_extractor(feature_dir)
        else:
            if feature_dir is not None:
                raise ValueError(f"feature_dir: only used with {what}={SHAPES_EXTRACTOR!r}, got {feature_dir}")
            name = extractor
            if weights_path is not None:
                kwargs["feature_extractor_weights_path"] = load_inception_weights(weights_path)
        self.layer = _metric_layer(name)
        self.cuda = torch.cuda.is_available()
        try:
            self.module = create_feature_extractor(name, [self.layer], cuda=self.cuda, verbose=False, **kwargs)
        except RuntimeError as e:
            # torch-fidelity's strict load_state_dict: missing, unexpected or mis-shaped tensors.
            if weights_path is None or "state_dict" not in str(e):
                raise
            raise ValueError(f"weights_path: {weights_path} does not fit torch-fidelity's Inception-v3: {e}") from e

    def __call__(self, images_uint8: torch.Tensor, batch_size: int) -> torch.Tensor:
        # save_cpu_ram: no DataLoader worker processes (the tensors are already in memory).
        out = get_featuresdict_from_dataset(
            _UInt8Images(images_uint8), self.module, batch_size, self.cuda, save_cpu_ram=True, verbose=False
        )
        return out[self.layer]


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size: must be positive, got {batch_size}")


def extract_features(
    images01: torch.Tensor,
    extractor: str,
    *,
    feature_dir: str | Path | None = None,
    weights_path: str | Path | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Features (n, d) float32 on the CPU of images in [0, 1], shape (n, 3, H, W), for FID/KID/PRC.

    The layer is the one torch-fidelity uses for all three metrics with that extractor: the 128-d
    "features" of the shapes net, the 2048-d "2048" pool of Inception-v3. Images are clamped and
    quantized to uint8 as torch-fidelity expects. `feature_dir` (shapes only) is the weights
    folder, default the shipped one; `weights_path` (Inception only) a local weights file, loaded
    weights-only (see the module docstring), default torch-fidelity's download.
    """
    _check_batch_size(batch_size)
    x = _to_uint8(images01, "images01", min_count=1)
    return _Extractor(extractor, feature_dir, weights_path, what="extractor")(x, batch_size)


def load_reference_images(path: str | Path) -> torch.Tensor:
    """Images in [0, 1], float32 (n, 3, H, W), from a .npy uint8 array (n, 3, H, W) or (n, H, W, 3).

    This is how a real data set's reference (CIFAR-10 train, written by `tools/prefetch.py`) is read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference images not found: {path}")
    try:
        a = np.load(path, allow_pickle=False)  # object arrays would need unpickling: refused
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npy array: {e}") from e
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{path}: expected one .npy array, got a {type(a).__name__} archive")
    if a.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 images, got dtype {a.dtype}")
    if a.ndim != 4 or 3 not in (a.shape[1], a.shape[3]) or a.shape[0] < 1:
        raise ValueError(f"{path}: expected shape (n, 3, H, W) or (n, H, W, 3) with n >= 1, got {a.shape}")
    if a.shape[1] != 3:
        a = a.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32).div_(255)


# ---- metrics from features ---------------------------------------------------------------------


def check_features(gen, ref) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated copies of two feature sets (n, d) and (m, d) on the CPU, in their common float dtype."""
    for what, f in (("gen", gen), ("ref", ref)):
        if not torch.is_tensor(f) or not f.is_floating_point() or f.dim() != 2:
            raise ValueError(
                f"{what}: expected a float tensor (n, d) of features, got {type(f).__name__} "
                f"{tuple(getattr(f, 'shape', ()))}"
            )
        if f.shape[0] < 2:
            raise ValueError(f"{what}: need at least 2 feature vectors, got {f.shape[0]}")
        if not torch.isfinite(f).all():
            raise ValueError(f"{what}: contains NaN or infinite values")
    if gen.shape[1] != ref.shape[1]:
        raise ValueError(f"gen and ref feature dimensions differ: {gen.shape[1]} vs {ref.shape[1]}")
    dtype = torch.promote_types(gen.dtype, ref.dtype)  # FID statistics must share a dtype
    return gen.detach().to("cpu", dtype), ref.detach().to("cpu", dtype)


def _kid_subset(kid_subset_size: int | None, n: int) -> int:
    subset = KID_SUBSET_SIZE if kid_subset_size is None else int(kid_subset_size)
    if subset < 2:
        raise ValueError(f"kid_subset_size: must be at least 2, got {kid_subset_size}")
    return min(subset, n)


def check_metric_args(n: int, kid_subset_size, kid_subsets: int, prc_neighborhood: int) -> int:
    """Validate the metric arguments for sets of at least `n` items; return the clamped KID subset size."""
    subset = _kid_subset(kid_subset_size, n)
    if kid_subsets < 1:
        raise ValueError(f"kid_subsets: must be positive, got {kid_subsets}")
    if not 1 <= prc_neighborhood < n:
        raise ValueError(f"prc_neighborhood: must be in [1, {n - 1}] for {n} items, got {prc_neighborhood}")
    return subset


def kid_metric(gen, ref, subset: int, kid_subsets: int, seed: int) -> dict:
    """torch-fidelity's KID dict (mean and std over `kid_subsets` random subsets of `subset` items)."""
    return kid_features_to_metric(
        gen, ref, kid_subset_size=subset, kid_subsets=kid_subsets, rng_seed=seed, verbose=False
    )


def metrics_from_features(
    gen: torch.Tensor,
    ref: torch.Tensor,
    *,
    kid_subset_size: int | None,
    kid_subsets: int = 100,
    prc_neighborhood: int = 3,
    seed: int = 2020,
    prc: bool = True,
) -> dict[str, float]:
    """FID, KID (mean over subsets), precision and recall of features `gen` (n, d) against `ref` (m, d).

    torch-fidelity's feature-level functions, with the settings `compute_fidelity` always used:
    `kid_subset_size` None means 1000, and is clamped to min(n, m); `seed` draws the KID subsets
    (the only random part), so equal inputs give equal outputs. Precision is the fraction of `gen`
    inside the `ref` manifold, recall the fraction of `ref` inside the `gen` one (k-NN balls with
    k = `prc_neighborhood`). `prc=False` leaves precision and recall out (`uncertainty` computes
    them, the same values, from the distance passes its errors make anyway).
    """
    g, r = check_features(gen, ref)
    subset = check_metric_args(min(len(g), len(r)), kid_subset_size, kid_subsets, prc_neighborhood)
    fid = fid_statistics_to_metric(fid_features_to_statistics(g), fid_features_to_statistics(r), verbose=False)
    kid = kid_metric(g, r, subset, kid_subsets, seed)
    out = {"fid": float(fid[KEY_METRIC_FID]), "kid": float(kid[KEY_METRIC_KID_MEAN])}
    if prc:
        # save_cpu_ram: row blocks instead of the full (n + m)^2 distance matrices (50k CIFAR references).
        pr = prc_features_to_metric(g, r, prc_neighborhood=prc_neighborhood, save_cpu_ram=True, verbose=False)
        out.update(precision=float(pr[KEY_METRIC_PRECISION]), recall=float(pr[KEY_METRIC_RECALL]))
    return out


def compute_fidelity(
    generated: torch.Tensor,
    reference: torch.Tensor,
    feature_extractor: str,
    feature_dir: str | Path | None = None,
    kid_subset_size: int | None = None,
    prc_neighborhood: int = 3,
    batch_size: int = 256,
    kid_subsets: int = 100,
    seed: int = 2020,
    weights_path: str | Path | None = None,
) -> dict[str, float]:
    """FID, KID (mean over subsets), precision and recall of `generated` against `reference`.

    Both are float tensors in [0, 1] of shape (n, 3, H, W) (values are clamped and quantized to
    uint8 as torch-fidelity expects). The features of each set are extracted once
    (`extract_features`) and the metrics computed from them (`metrics_from_features`, which also
    documents `kid_subset_size` and `seed`). `feature_dir` (shapes extractor only) is the weights
    folder, `weights_path` (Inception only) a local weights file.
    """
    gen = _to_uint8(generated, "generated")
    ref = _to_uint8(reference, "reference")
    if gen.shape[1:] != ref.shape[1:]:
        raise ValueError(
            f"generated and reference image shapes differ: {tuple(gen.shape[1:])} vs {tuple(ref.shape[1:])}"
        )
    check_metric_args(min(gen.shape[0], ref.shape[0]), kid_subset_size, kid_subsets, prc_neighborhood)
    _check_batch_size(batch_size)
    extract = _Extractor(feature_extractor, feature_dir, weights_path, what="feature_extractor")
    g, r = extract(gen, batch_size), extract(ref, batch_size)
    return metrics_from_features(
        g, r, kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, prc_neighborhood=prc_neighborhood, seed=seed
    )
