"""torch-fidelity feature extractors: the shapes feature net bound to a weights folder, and
Inception-v3 weights read without unpickling code.

torch-fidelity keeps extractors in a global registry of classes that it instantiates per call,
so `register_shapes_extractor(folder)` registers a subclass bound to `folder`: the shipped folder
under the fixed name "shapes-features", any other folder (e.g. a random-init net in a temp dir)
under "shapes-features-<hash of its path>". Registration is idempotent.

Inception weights files are never unpickled freely: torch-fidelity 0.4.0 reads
`feature_extractor_weights_path` with `torch.load(..., weights_only=False)`, which runs whatever
code a pickle names. `load_inception_weights` therefore loads the file itself with
`torch.load(weights_only=True)` (tensors and plain containers only; anything else is refused
before it runs) and returns an in-memory copy re-serialized from those tensors, for torch-fidelity.
With no weights file torch-fidelity downloads its own from its release URL and loads it its own way.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from lines_model import atomic
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


# ---- Inception weights -------------------------------------------------------------------------


def _serialized(state_dict: Mapping[str, torch.Tensor]) -> io.BytesIO:
    # torch-fidelity passes `feature_extractor_weights_path` straight to torch.load, which also
    # takes a file object: a stream we wrote from plain tensors is the only pickle it ever reads.
    buf = io.BytesIO()
    torch.save(dict(state_dict), buf)
    buf.seek(0)
    return buf


def load_inception_weights(path: str | Path) -> io.BytesIO:
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
