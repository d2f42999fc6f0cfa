"""FID / KID / precision-recall through torch-fidelity, with the shapes feature net as an extractor.

`compute_fidelity(generated, reference, feature_extractor)` takes two float image tensors in
[0, 1] and returns {"fid", "kid", "precision", "recall"}. Two extractors are supported:

- "shapes-features": `lines_model.features.ShapesFeatureNet` (penultimate 128-d features),
  loaded from `feature_dir` (default: the shipped `teachers/shapes-features/`);
- "inception-v3-compat": torch-fidelity's own Inception-v3 (the CIFAR-10 metric; needs its
  downloaded weights).

torch-fidelity keeps extractors in a global registry of classes that it instantiates per call,
so `register_shapes_extractor(folder)` registers a subclass bound to `folder`: the shipped folder
under the fixed name "shapes-features", any other folder (e.g. a random-init net in a temp dir)
under "shapes-features-<hash of its path>". Registration is idempotent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from lines_model import features as features_mod

SHAPES_EXTRACTOR = "shapes-features"
INCEPTION_EXTRACTOR = "inception-v3-compat"
SUPPORTED_EXTRACTORS = (SHAPES_EXTRACTOR, INCEPTION_EXTRACTOR)


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


class _UInt8Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _to_uint8(x, what: str) -> torch.Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"{what}: expected a float tensor in [0, 1], got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{what}: expected shape (n, 3, H, W), got {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"{what}: need at least 2 images, got {x.shape[0]}")
    x = x.detach().to("cpu", torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).contiguous()


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
) -> dict[str, float]:
    """FID, KID (mean over subsets), precision and recall of `generated` against `reference`.

    Both are float tensors in [0, 1] of shape (n, 3, H, W) (values are clamped and quantized to
    uint8 as torch-fidelity expects). `feature_dir` (shapes extractor only) is the weights folder,
    default the shipped one. `kid_subset_size` defaults to 1000 and is clamped to the smaller
    set's size. Precision/recall follow torch-fidelity: input1 = generated, input2 = reference.
    """
    if feature_extractor not in SUPPORTED_EXTRACTORS:
        raise ValueError(
            f"feature_extractor: {feature_extractor!r} is not supported; expected one of "
            f"{', '.join(map(repr, SUPPORTED_EXTRACTORS))}"
        )
    gen = _to_uint8(generated, "generated")
    ref = _to_uint8(reference, "reference")
    if gen.shape[1:] != ref.shape[1:]:
        raise ValueError(f"generated and reference image shapes differ: {tuple(gen.shape[1:])} vs {tuple(ref.shape[1:])}")
    n = min(gen.shape[0], ref.shape[0])
    if feature_extractor == SHAPES_EXTRACTOR:
        name = register_shapes_extractor(feature_dir)
    else:
        if feature_dir is not None:
            raise ValueError(f"feature_dir: only used with feature_extractor={SHAPES_EXTRACTOR!r}, got {feature_dir}")
        name = feature_extractor
    subset = 1000 if kid_subset_size is None else int(kid_subset_size)
    if subset < 2:
        raise ValueError(f"kid_subset_size: must be at least 2, got {kid_subset_size}")
    subset = min(subset, n)
    if not 1 <= prc_neighborhood < n:
        raise ValueError(f"prc_neighborhood: must be in [1, {n - 1}] for {n} images, got {prc_neighborhood}")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be positive, got {batch_size}")
    m = torch_fidelity.calculate_metrics(
        input1=_UInt8Images(gen),
        input2=_UInt8Images(ref),
        fid=True,
        kid=True,
        prc=True,
        feature_extractor=name,
        kid_subset_size=subset,
        kid_subsets=kid_subsets,
        prc_neighborhood=prc_neighborhood,
        batch_size=batch_size,
        rng_seed=seed,
        cache=False,
        verbose=False,
        # No DataLoader worker processes (the tensors are already in memory).
        save_cpu_ram=True,
        cuda=torch.cuda.is_available(),
    )
    return {
        "fid": float(m["frechet_inception_distance"]),
        "kid": float(m["kernel_inception_distance_mean"]),
        "precision": float(m["precision"]),
        "recall": float(m["recall"]),
    }
