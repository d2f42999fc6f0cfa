"""A small CNN trained on the factor labels of the shapes data set, used as the FID feature net.

Inception-v3 features mean little on 16x16 synthetic images, so FID / KID / precision-recall
on the shapes data set are computed in the penultimate layer of this net instead. It sees
images in [0, 1], shape (n, 3, 16, 16), and has one classification head per discrete factor
(shape, foreground colour, background colour) plus a regression head for the geometry
(radius and centre), so its features encode everything that makes one shape image differ
from another.

The shipped weights live in `teachers/shapes-features/` (`model.safetensors` + `config.json`);
`python -m tools.train_features` (run from the repository root) makes them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

from lines_model import atomic, shapes
from lines_model.errors import InputError
from lines_model.files import load_safetensors, read_json
from lines_model.errors import ConfigError
from lines_model.typed import field, from_dict

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# The folder of the shipped weights, next to the package in the repository.
DEFAULT_FEATURE_DIR = Path(__file__).resolve().parent.parent / "teachers" / "shapes-features"

HEADS = {
    "shape": len(shapes.SHAPES),
    "foreground": len(shapes.FOREGROUNDS),
    "background": len(shapes.BACKGROUNDS),
}
GEOMETRY_DIMS = 3  # radius, center x, center y
# Geometry targets are standardised as (value - offset) / scale before regression.
GEOMETRY_OFFSET = torch.tensor([4.75, shapes.SIZE / 2, shapes.SIZE / 2])
GEOMETRY_SCALE = torch.tensor([1.25, 3.0, 3.0])


@dataclass(frozen=True)
class FeatureNetConfig:
    """Constructor arguments of `ShapesFeatureNet`; stored as `config.json` beside the weights."""

    image_size: int = field(shapes.SIZE, min=4)
    widths: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = field(128, min=1)
    # Multiplies what `features()` returns (not what the heads see); set after training so that
    # the features have unit root-mean-square, which keeps FID/KID magnitudes independent of the
    # arbitrary scale the trained layer ended up with (KID's cubic kernel assumes O(1) features).
    feature_scale: float = field(1.0, min=0.0)

    def validate(self, where: str) -> None:
        if len(self.widths) != 3 or any(w < 1 for w in self.widths):
            raise ConfigError(f"{where}.widths: expected three positive channel counts, got {list(self.widths)}")
        if self.image_size % 4:
            raise ConfigError(f"{where}.image_size: {self.image_size} is not divisible by 4 (two 2x poolings)")


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ShapesFeatureNet(nn.Module):
    """CNN for 3 x S x S images in [0, 1].

    `features(x)` is the penultimate vector (after a ReLU, times `feature_scale`), `forward(x)` a
    dict of head outputs:
    logits `shape` (4), `foreground` (6), `background` (3) and `geometry` (3 standardised
    regression outputs for radius, center x, center y; see `decode_geometry`).
    """

    def __init__(
        self,
        image_size: int = shapes.SIZE,
        widths: tuple[int, ...] = (32, 64, 128),
        feature_dim: int = 128,
        feature_scale: float = 1.0,
    ):
        super().__init__()
        # Round-trip through the strict config so that bad arguments fail the same way as a bad config.json.
        cfg = from_dict(
            FeatureNetConfig,
            {
                "image_size": image_size,
                "widths": list(widths),
                "feature_dim": feature_dim,
                "feature_scale": feature_scale,
            },
            "ShapesFeatureNet",
        )
        self.config = cfg
        w1, w2, w3 = cfg.widths
        self.trunk = nn.Sequential(
            *_conv(3, w1),
            *_conv(w1, w1),
            nn.MaxPool2d(2),
            *_conv(w1, w2),
            *_conv(w2, w2),
            nn.MaxPool2d(2),
            *_conv(w2, w3),
        )
        # Flatten (not global pooling) so position and size survive into the features.
        side = cfg.image_size // 4
        self.embed = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w3 * side * side, cfg.feature_dim),
            nn.ReLU(inplace=True),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(cfg.feature_dim, k) for name, k in HEADS.items()})
        self.heads["geometry"] = nn.Linear(cfg.feature_dim, GEOMETRY_DIMS)

    def _check(self, x: torch.Tensor) -> None:
        s = self.config.image_size
        if x.dim() != 4 or x.shape[1:] != (3, s, s):
            raise ValueError(f"ShapesFeatureNet expects images of shape (n, 3, {s}, {s}), got {tuple(x.shape)}")

    def raw_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (n, feature_dim), non-negative, as the heads see them."""
        self._check(x)
        return self.embed(self.trunk(x * 2.0 - 1.0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature vector for FID/KID/precision-recall: `raw_features(x) * feature_scale`."""
        return self.raw_features(x) * self.config.feature_scale

    def head_outputs(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head outputs from `raw_features` (not the scaled `features`)."""
        return {name: head(raw) for name, head in self.heads.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head_outputs(self.raw_features(x))

    def with_feature_scale(self, feature_scale: float) -> "ShapesFeatureNet":
        """A copy whose `features()` are multiplied by `feature_scale` (same weights)."""
        cfg = asdict(self.config) | {"feature_scale": float(feature_scale)}
        other = ShapesFeatureNet(**cfg)
        other.load_state_dict(self.state_dict())
        return other.train(self.training)


def encode_geometry(factors: shapes.Factors) -> torch.Tensor:
    """Standardised (radius, cx, cy) regression targets, shape (n, 3)."""
    raw = torch.cat([factors.radius[:, None], factors.center], dim=1)
    return (raw - GEOMETRY_OFFSET) / GEOMETRY_SCALE


def decode_geometry(pred: torch.Tensor) -> torch.Tensor:
    """(radius, cx, cy) in pixels from the `geometry` head output."""
    return pred * GEOMETRY_SCALE.to(pred) + GEOMETRY_OFFSET.to(pred)


def write_feature_net(model: ShapesFeatureNet, folder: str | Path) -> None:
    """Write `model.safetensors` and `config.json` into an existing folder (not atomic by itself)."""
    folder = Path(folder)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=2) + "\n")


def save_feature_net(model: ShapesFeatureNet, folder: str | Path, extra_files: dict[str, str] | None = None) -> None:
    """Replace `folder` atomically with the weights, `config.json` and any `extra_files` (name -> text)."""
    with atomic.atomic_dir(folder) as tmp:
        write_feature_net(model, tmp)
        for name, text in (extra_files or {}).items():
            if Path(name).name != name or name in (WEIGHTS_FILE, CONFIG_FILE):
                raise ValueError(f"extra_files: {name!r} must be a plain file name other than the weights/config")
            (tmp / name).write_text(text)


def load_feature_net(
    folder: str | Path = DEFAULT_FEATURE_DIR, map_location: str | torch.device = "cpu"
) -> ShapesFeatureNet:
    """Load a net saved by `save_feature_net` (safetensors only), in eval mode with gradients off."""
    folder = Path(folder)
    weights, config = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"feature net weights not found: {weights} (expected {WEIGHTS_FILE} written by save_feature_net; "
            "make it with `python -m tools.train_features --out <folder>` from the repository root)"
        )
    if not config.is_file():
        raise FileNotFoundError(f"feature net config not found: {config}")
    cfg = from_dict(FeatureNetConfig, read_json(config, "the feature net's config"), str(config))
    model = ShapesFeatureNet(**asdict(cfg))
    try:
        model.load_state_dict(load_safetensors(weights, device=str(map_location)), strict=True)
    except RuntimeError as e:  # missing, unexpected or mis-shaped tensors
        raise InputError(f"{weights}: does not fit the feature net of {config} ({str(e).splitlines()[0]})") from None
    model.to(map_location)
    model.eval().requires_grad_(False)
    return model
