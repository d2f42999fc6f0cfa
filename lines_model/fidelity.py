"""FID / KID / precision-recall through torch-fidelity: features once, metrics and their errors from them.

Two extractors are supported:

- "shapes-features": `lines_model.features.ShapesFeatureNet` (penultimate 128-d features),
  loaded from `feature_dir` (default: the shipped `teachers/shapes-features/`);
- "inception-v3-compat": torch-fidelity's own Inception-v3 (the CIFAR-10 metric, 2048-d pool
  features), from a local weights file `weights_path` or, if that is None, torch-fidelity's download.

`extract_features(images, extractor)` runs the extractor once per image set;
`metrics_from_features(gen, ref)` gives {"fid", "kid", "precision", "recall"} with torch-fidelity's
own feature-level functions, and `standard_errors(gen, ref)` their sampling errors over the
generated set (the reference held fixed). `compute_fidelity(generated, reference, extractor)` does
all of it from two image tensors in [0, 1].

torch-fidelity keeps extractors in a global registry of classes that it instantiates per call,
so `register_shapes_extractor(folder)` registers a subclass bound to `folder`: the shipped folder
under the fixed name "shapes-features", any other folder (e.g. a random-init net in a temp dir)
under "shapes-features-<hash of its path>". Registration is idempotent.

Inception weights files are never unpickled freely: torch-fidelity 0.4.0 reads
`feature_extractor_weights_path` with `torch.load(..., weights_only=False)`, which runs whatever
code a pickle names. `extract_features` therefore loads the file itself with
`torch.load(weights_only=True)` (tensors and plain containers only; anything else is refused
before it runs) and hands torch-fidelity an in-memory copy re-serialized from those tensors. With
`weights_path=None` torch-fidelity downloads its file from its release URL and loads it its own way.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.helpers import vassert
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kernel_poly, kid_features_to_metric
from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, calc_cdist_part, prc_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from lines_model import atomic
from lines_model import features as features_mod

SHAPES_EXTRACTOR = "shapes-features"
INCEPTION_EXTRACTOR = "inception-v3-compat"
SUPPORTED_EXTRACTORS = (SHAPES_EXTRACTOR, INCEPTION_EXTRACTOR)
KID_SUBSET_SIZE = 1000  # torch-fidelity's default, used when kid_subset_size is None
# Half-sample replicates in `standard_errors`: an error from B replicates is itself uncertain by
# about 1 / sqrt(2 B) of it, 5% at 200; each replicate reuses the kernels and distances computed
# once, so 200 of them cost well under a second for 500 x 128-d features on one CPU core.
N_BOOT = 200
KID_MC_SUBSETS = 10  # subsets that estimate the Monte Carlo spread of KID in `standard_errors`


class ShapesFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over `ShapesFeatureNet`; subclasses bind `weights_dir`.

    Input: uint8 tensors (n, 3, H, W) with H = W = the net's image size (16). Provided features:
    "features" (penultimate, used for FID, KID and precision/recall) and "shape_logits" (used for
    the inception score).
    """

    weights_dir: ClassVar[str | None] = None

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        vassert(self.weights_dir is not None, "use register_shapes_extractor(folder) to bind a weights folder")
        self.net = features_mod.load_feature_net(self.weights_dir)
        self.requires_grad_(False)

    def forward(self, x):
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=torch.uint8")
        s = self.net.config.image_size
        vassert(
            x.dim() == 4 and x.shape[1] == 3 and x.shape[2] == s and x.shape[3] == s,
            f"Input is not Bx3x{s}x{s}: {tuple(x.shape)} (the shapes feature net takes {s}x{s} images, no resizing)",
        )
        raw = self.net.raw_features(x.to(torch.float32) / 255.0)
        out = {"features": raw * self.net.config.feature_scale, "shape_logits": self.net.heads["shape"](raw)}
        return tuple(out[a] for a in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return ("features", "shape_logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "shape_logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled():
        return True

    @staticmethod
    def get_dummy_input_for_compile():
        return (torch.rand([1, 3, 16, 16]) * 255).to(torch.uint8)


def register_shapes_extractor(folder: str | Path | None = None) -> str:
    """Register the shapes extractor loading the weights in `folder`; return its registry name.

    `folder=None` or the shipped folder -> "shapes-features"; another folder ->
    "shapes-features-<12 hex digits of its resolved path>". Calling again with the same folder
    returns the same name. Raises FileNotFoundError (naming the file) if the weights are missing.
    """
    default = features_mod.DEFAULT_FEATURE_DIR.resolve()
    folder = Path(folder).resolve() if folder is not None else default
    weights = folder / features_mod.WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"shapes feature net weights not found: {weights}")
    if folder == default:
        name = SHAPES_EXTRACTOR
    else:
        name = f"{SHAPES_EXTRACTOR}-{hashlib.sha1(str(folder).encode()).hexdigest()[:12]}"
    existing = FEATURE_EXTRACTORS_REGISTRY.get(name)
    if existing is not None:
        if getattr(existing, "weights_dir", None) == str(folder):
            return name
        raise RuntimeError(
            f"feature extractor {name!r} is already registered for {getattr(existing, 'weights_dir', existing)}, "
            f"not {folder}"
        )
    cls = type("ShapesFeatureExtractorBound", (ShapesFeatureExtractor,), {"weights_dir": str(folder)})
    torch_fidelity.register_feature_extractor(name, cls)
    return name


# ---- Inception weights -------------------------------------------------------------------------


def _serialized(state_dict: Mapping[str, torch.Tensor]) -> io.BytesIO:
    # torch-fidelity passes `feature_extractor_weights_path` straight to torch.load, which also
    # takes a file object: a stream we wrote from plain tensors is the only pickle it ever reads.
    buf = io.BytesIO()
    torch.save(dict(state_dict), buf)
    buf.seek(0)
    return buf


def _load_inception_weights(path: str | Path) -> io.BytesIO:
    """The weights file at `path`, loaded weights-only and re-serialized for torch-fidelity."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights_path: Inception weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or a pickle naming anything but tensors and containers
        raise ValueError(f"weights_path: {path} is not a weights-only PyTorch state dict: {e}") from e
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise ValueError(f"weights_path: {path} does not hold a state dict (a mapping of names to tensors)")
    return _serialized(state)


class _KeepInitInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3 that keeps its random initialisation instead of loading weights."""

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return None


def save_random_inception_weights(path: str | Path, seed: int = 0) -> Path:
    """Write random weights for torch-fidelity's Inception-v3 to `path` (replacing it); return the path.

    Same keys and shapes as torch-fidelity's real file, so tests and offline smoke runs can take the
    real Inception code path (`weights_path=...`) without the download.
    """
    path = Path(path)
    # The init draws from the global generator; fork it so the caller's random stream is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _KeepInitInceptionV3(INCEPTION_EXTRACTOR, ["2048"], feature_extractor_weights_path=_serialized({}))
        # PyTorch's default conv init shrinks activations by ~3x per layer; He init keeps the
        # 2048-d pool features O(1) after the ~90 layers instead of vanishing.
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    with atomic.atomic_path(path) as tmp:
        torch.save(net.state_dict(), tmp)
    return path


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
        raise ValueError(f"{what}: expected a float tensor in [0, 1], got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')}")
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
                kwargs["feature_extractor_weights_path"] = _load_inception_weights(weights_path)
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


def _check_features(gen, ref) -> tuple[torch.Tensor, torch.Tensor]:
    for what, f in (("gen", gen), ("ref", ref)):
        if not torch.is_tensor(f) or not f.is_floating_point() or f.dim() != 2:
            raise ValueError(f"{what}: expected a float tensor (n, d) of features, got {type(f).__name__} "
                             f"{tuple(getattr(f, 'shape', ()))}")
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


def _check_metric_args(n: int, kid_subset_size, kid_subsets: int, prc_neighborhood: int) -> int:
    """Validate the metric arguments for sets of at least `n` items; return the clamped KID subset size."""
    subset = _kid_subset(kid_subset_size, n)
    if kid_subsets < 1:
        raise ValueError(f"kid_subsets: must be positive, got {kid_subsets}")
    if not 1 <= prc_neighborhood < n:
        raise ValueError(f"prc_neighborhood: must be in [1, {n - 1}] for {n} items, got {prc_neighborhood}")
    return subset


def _kid(gen, ref, subset: int, kid_subsets: int, seed: int) -> dict:
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
) -> dict[str, float]:
    """FID, KID (mean over subsets), precision and recall of features `gen` (n, d) against `ref` (m, d).

    torch-fidelity's feature-level functions, with the settings `compute_fidelity` always used:
    `kid_subset_size` None means 1000, and is clamped to min(n, m); `seed` draws the KID subsets
    (the only random part), so equal inputs give equal outputs. Precision is the fraction of `gen`
    inside the `ref` manifold, recall the fraction of `ref` inside the `gen` one (k-NN balls with
    k = `prc_neighborhood`).
    """
    g, r = _check_features(gen, ref)
    subset = _check_metric_args(min(len(g), len(r)), kid_subset_size, kid_subsets, prc_neighborhood)
    fid = fid_statistics_to_metric(fid_features_to_statistics(g), fid_features_to_statistics(r), verbose=False)
    kid = _kid(g, r, subset, kid_subsets, seed)
    # save_cpu_ram: row blocks instead of the full (n + m)^2 distance matrices (50k CIFAR references).
    prc = prc_features_to_metric(g, r, prc_neighborhood=prc_neighborhood, save_cpu_ram=True, verbose=False)
    return {
        "fid": float(fid[KEY_METRIC_FID]),
        "kid": float(kid[KEY_METRIC_KID_MEAN]),
        "precision": float(prc[KEY_METRIC_PRECISION]),
        "recall": float(prc[KEY_METRIC_RECALL]),
    }


# ---- standard errors ---------------------------------------------------------------------------


def _fid_replicates(g: torch.Tensor, r: torch.Tensor, halves: torch.Tensor) -> torch.Tensor:
    """FID of each subset of `g` (rows of `halves`: indices) against the fixed `r`.

    tr sqrt(S_g S_r) = tr sqrt(R S_g R) with R = S_r^(1/2) computed once, and R S_g R = A^T A with
    A = (g - mu_g) R / sqrt(h - 1): one symmetric eigenvalue problem of size min(h, d) per
    subset instead of torch-fidelity's general d x d one (the same value; see the tests).
    """
    mu_r, cov_r = r.mean(0), torch.cov(r.T)
    evals, evecs = torch.linalg.eigh(cov_r)
    root = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
    out = torch.empty(len(halves), dtype=torch.float64)
    for b, idx in enumerate(halves.to(g.device)):
        x = g[idx]
        h, d = x.shape
        mu = x.mean(0)
        xc = x - mu
        a = xc @ root / math.sqrt(h - 1)
        gram = a.T @ a if h >= d else a @ a.T
        tr_sqrt = torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().sum()
        out[b] = ((mu - mu_r).pow(2).sum() + xc.pow(2).sum() / (h - 1) + cov_r.trace() - 2 * tr_sqrt).cpu()
    return out


def _kid_replicates(g: np.ndarray, r: np.ndarray, masks: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Unbiased MMD^2 between each subset of `g` (rows of 0/1 `masks`) and all of `r`, less its
    reference-only term, which is the same for every subset and so moves no spread.

    This is the full-set U-statistic that KID's average over random subsets estimates. Kernels
    are torch-fidelity's (cubic polynomial), computed once in row blocks of `chunk`.
    """
    n, m = len(g), len(r)
    h = masks.sum(1)
    quad, diag, cross = np.zeros(len(masks)), np.empty(n), np.zeros(n)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        k = kernel_poly(g[lo:hi], g)  # (hi - lo, n)
        quad += np.einsum("bi,bi->b", masks[:, lo:hi], masks @ k.T)
        diag[lo:hi] = k[np.arange(hi - lo), np.arange(lo, hi)]
    for lo in range(0, m, chunk):
        cross += kernel_poly(g, r[lo : lo + chunk]).sum(1)
    return (quad - masks @ diag) / (h * (h - 1)) - 2 * (masks @ cross) / (h * m)


# Rows per block of a distance matrix (torch-fidelity's prc_batch_size): a 10k x 50k block is 2 GB.
_PRC_ROWS = 10_000


def _kth_neighbour_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of `x` to its k-th nearest other row (torch-fidelity's manifold radii)."""
    return torch.cat([calc_cdist_part(b, x).kthvalue(k + 1, dim=1).values for b in x.split(_PRC_ROWS)])


def _recall_replicates(g: torch.Tensor, r: torch.Tensor, k: int, halves: torch.Tensor) -> np.ndarray:
    """Recall against `r` of each subset of `g` (rows of `halves`: indices without repeats)."""
    d_gg = calc_cdist_part(g, g)  # torch-fidelity's distances, computed once: n x n and m x n
    d_rg = torch.cat([calc_cdist_part(b, g) for b in r.split(_PRC_ROWS)])
    out = np.empty(len(halves))
    for b, idx in enumerate(halves):
        radii = d_gg[idx][:, idx].kthvalue(k + 1, dim=1).values  # k-th neighbour within the subset (self is 0)
        out[b] = (d_rg[:, idx] <= radii).any(dim=1).double().mean().item()
    return out


def standard_errors(
    gen: torch.Tensor,
    ref: torch.Tensor,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
    kid_subset_size: int | None,
    kid_subsets: int = 100,
    prc_neighborhood: int = 3,
    metric_seed: int = 2020,
) -> dict[str, float]:
    """Standard errors {"fid_se", "kid_se", "precision_se", "recall_se"} of `metrics_from_features`.

    They measure how much each metric would move if the generator drew another `len(gen)` samples
    (the reference set held fixed), from the features alone; `seed` fixes every resample, so equal
    inputs give equal errors. The metric arguments are those of `metrics_from_features`
    (`metric_seed` is its `seed`).

    Estimator: half-sampling, i.e. the delete-d jackknife with d = n/2 (Shao & Wu 1989). Each of
    the `n_boot` replicates recomputes the metrics on a random half of `gen` (h = n // 2 points,
    drawn without replacement), and var = h / (n - h) * var(replicates): for a mean that is
    sigma^2 / n up to the finite-population factor, and it stays consistent for non-smooth
    statistics like precision/recall. Why not the bootstrap (drawing with replacement):

    - its copies are neighbours at distance 0, so the generated k-NN balls behind recall shrink,
      and KID's within-set mean counts each copied pair as a perfect match; dropping the copies
      turns a replicate into a ~63% subsample whose spread is too small;
    - for FID in high dimension its random effective sample size makes FID's d/n bias term
      fluctuate between replicates: on Gaussian features with d = 128, n = 500 it overstated the
      spread across independent draws about 2x, half-sampling 1.06x.

    Against the spread over 30-40 independent Gaussian draws (the cases in tests/test_fidelity.py
    and others with d from 8 to 128, n from 100 to 500) the errors came out 0.9-1.3x for FID, KID and precision and 0.8-1.1x
    for recall (its balls, built within halves, are larger than at full size), and up to 1.6x
    for FID and KID when `gen` and `ref` come from one distribution (there their spread shrinks
    faster than 1/n). The observed spreads themselves were known to about +-12%.

    KID's replicate is the full-set unbiased MMD^2 that its subset average estimates, plus the
    Monte Carlo variance of averaging `kid_subsets` random subsets (std^2 / kid_subsets, the std
    of single-subset KIDs taken from the first 10 of them). Needs `prc_neighborhood` < n // 2
    (the recall balls are built within a half).

    Cost: kernels and distances are computed once (O((n + m) n d) time; the n x n and m x n
    distance matrices are kept, 2.4 GB for n = 10k, m = 50k); per replicate the FID takes a
    min(h, d)-sized symmetric eigenproblem (on the GPU if there is one), the rest O(n (n + m)).
    """
    g, r = _check_features(gen, ref)
    n = len(g)
    if n_boot < 2:
        raise ValueError(f"n_boot: need at least 2 replicates for a spread, got {n_boot}")
    subset = _check_metric_args(min(n, len(r)), kid_subset_size, kid_subsets, prc_neighborhood)
    h = n // 2
    if not prc_neighborhood < h:
        raise ValueError(f"prc_neighborhood: the errors use halves of {h} generated items, so it must be "
                         f"below {h}, got {prc_neighborhood}")
    rng = np.random.default_rng(seed)
    halves = np.sort(rng.random((n_boot, n)).argsort(axis=1)[:, :h], axis=1)
    masks = np.zeros((n_boot, n))
    np.put_along_axis(masks, halves, 1.0, axis=1)
    halves = torch.from_numpy(halves)

    g64, r64 = g.to(torch.float64), r.to(torch.float64)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fid = _fid_replicates(g64.to(device), r64.to(device), halves).numpy()
    kid = _kid_replicates(g64.numpy(), r64.numpy(), masks)
    # The spread of single-subset KIDs, from the first few of the metric's own subsets: it enters
    # divided by kid_subsets, so a rough value suffices, and all of them would cost as much as KID.
    kid_std = _kid(g, r, subset, min(kid_subsets, KID_MC_SUBSETS), metric_seed)[KEY_METRIC_KID_STD]
    kid_mc_var = kid_std**2 / kid_subsets
    # Which generated points lie in the reference manifold, with torch-fidelity's distances.
    ref_radii = _kth_neighbour_radii(r, prc_neighborhood)
    inside = torch.cat([(calc_cdist_part(b, r) <= ref_radii).any(dim=1) for b in g.split(_PRC_ROWS)])
    inside = inside.double().numpy()
    precision = masks @ inside / h
    recall = _recall_replicates(g, r, prc_neighborhood, halves)
    factor = h / (n - h)
    return {
        "fid_se": math.sqrt(factor * fid.var(ddof=1)),
        "kid_se": math.sqrt(factor * kid.var(ddof=1) + kid_mc_var),
        "precision_se": math.sqrt(factor * precision.var(ddof=1)),
        "recall_se": math.sqrt(factor * recall.var(ddof=1)),
    }


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
    with_se: bool = False,
) -> dict[str, float]:
    """FID, KID (mean over subsets), precision and recall of `generated` against `reference`.

    Both are float tensors in [0, 1] of shape (n, 3, H, W) (values are clamped and quantized to
    uint8 as torch-fidelity expects). The features of each set are extracted once
    (`extract_features`) and the metrics computed from them (`metrics_from_features`, which also
    documents `kid_subset_size` and `seed`). `feature_dir` (shapes extractor only) is the weights
    folder, `weights_path` (Inception only) a local weights file. `with_se` adds "fid_se",
    "kid_se", "precision_se" and "recall_se" (`standard_errors`, default settings).
    """
    gen = _to_uint8(generated, "generated")
    ref = _to_uint8(reference, "reference")
    if gen.shape[1:] != ref.shape[1:]:
        raise ValueError(f"generated and reference image shapes differ: {tuple(gen.shape[1:])} vs {tuple(ref.shape[1:])}")
    _check_metric_args(min(gen.shape[0], ref.shape[0]), kid_subset_size, kid_subsets, prc_neighborhood)
    _check_batch_size(batch_size)
    extract = _Extractor(feature_extractor, feature_dir, weights_path, what="feature_extractor")
    g, r = extract(gen, batch_size), extract(ref, batch_size)
    kwargs = dict(kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, prc_neighborhood=prc_neighborhood)
    out = metrics_from_features(g, r, seed=seed, **kwargs)
    if with_se:
        out.update(standard_errors(g, r, metric_seed=seed, **kwargs))
    return out
