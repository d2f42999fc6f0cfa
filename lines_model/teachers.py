"""Load a pretrained DDPM teacher: a diffusers UNet2DModel plus its scheduler config.

`teacher.model` is a local folder or a hub id such as `google/ddpm-cifar10-32`. Both the flat
layout of that hub repo (config.json, weights and scheduler_config.json at the root) and the
pipeline layout (unet/ and scheduler/ subfolders) are accepted. Weights load from safetensors
(or a torch file with `weights_only=True`); no code shipped with a model is ever imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import UNet2DModel

from lines_model import noise_schedule
from lines_model.errors import TeacherError
from lines_model.files import read_json
from lines_model.hashing import hash_files


_WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclass
class Teacher:
    unet: UNet2DModel
    scheduler_config: dict  # DDPMScheduler config, every key explicit (noise_schedule.resolve)
    source: str  # what teacher.model said
    folder: Path  # where the files were read from
    sha256: str  # content hash of config + weights + scheduler config (teacher identity)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        c = self.unet.config
        size = c.sample_size if isinstance(c.sample_size, int) else c.sample_size[0]
        return (c.in_channels, size, size)


def _layout(folder: Path) -> tuple[Path, Path]:
    """(unet folder, scheduler folder) of a flat or pipeline layout."""
    if (folder / "config.json").exists():
        return folder, folder
    if (folder / "unet" / "config.json").exists():
        return folder / "unet", folder / "scheduler"
    raise TeacherError(
        f"{folder}: not a diffusers model folder: expected config.json (flat layout, like google/ddpm-cifar10-32) "
        "or unet/config.json (pipeline layout)"
    )


def _hub_download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.bin"]  # never *.py: shipped code is not run
    try:  # a previous download in the local cache needs no network
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        pass
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, etag_timeout=10))
    except Exception as e:  # offline, DNS failure, 401/404: all end the same way for the user
        raise TeacherError(
            f"teacher.model: cannot download '{repo_id}' from the Hugging Face hub ({type(e).__name__}). "
            f"Run once with network access to cache it (e.g. `huggingface-cli download {repo_id}`), "
            "or set teacher.model to a local folder holding config.json, the weights and scheduler_config.json."
        ) from None


def resolve(model: str, revision: str | None = None) -> Path:
    """The local folder holding `model` (downloading a hub id when possible)."""
    path = Path(model)
    if path.exists():
        if not path.is_dir():
            raise TeacherError(f"teacher.model: {model} is a file; expected a model folder")
        return path
    if model.count("/") == 1 and not model.startswith((".", "/")) and not Path(model.split("/")[0]).exists():
        return _hub_download(model, revision)
    raise TeacherError(f"teacher.model: folder {model} does not exist (and is not a hub id of the form owner/name)")


def content_hash(folder: Path) -> str:
    unet_dir, sched_dir = _layout(folder)
    files = [unet_dir / "config.json", *[unet_dir / w for w in _WEIGHT_FILES], sched_dir / "scheduler_config.json"]
    return hash_files(*(f for f in files if f.exists()), named=True)


def read_configs(model: str, revision: str | None = None) -> tuple[dict, dict]:
    """(UNet config, scheduler config) of a teacher, without loading its weights (preflight checks)."""
    unet_dir, sched_dir = _layout(resolve(model, revision))
    path = sched_dir / "scheduler_config.json"
    if not path.exists():
        raise TeacherError(f"{path}: missing; the teacher's noise schedule is needed to sample")
    sched = noise_schedule.resolve(read_json(path, "the teacher's DDPMScheduler config"))
    return read_json(unet_dir / "config.json", "the teacher's UNet2DModel config"), sched


def load_teacher(model: str, revision: str | None = None, device: str | torch.device = "cpu") -> Teacher:
    folder = resolve(model, revision)
    unet_dir, sched_dir = _layout(folder)
    weights = [unet_dir / w for w in _WEIGHT_FILES if (unet_dir / w).exists()]
    if not weights:
        raise TeacherError(f"{unet_dir}: no weights: expected {_WEIGHT_FILES[0]} (or {_WEIGHT_FILES[1]})")
    if not (sched_dir / "scheduler_config.json").exists():
        raise TeacherError(
            f"{sched_dir / 'scheduler_config.json'}: missing; the teacher's noise schedule is needed to sample"
        )
    cfg = read_json(unet_dir / "config.json", "the teacher's UNet2DModel config")
    sched = noise_schedule.resolve(read_json(sched_dir / "scheduler_config.json", "the teacher's DDPMScheduler config"))
    if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise TeacherError(
            f"{unet_dir / 'config.json'}: _class_name is {cfg.get('_class_name')!r}; only UNet2DModel "
            f"teachers are supported"
        )
    use_st = weights[0].suffix == ".safetensors"
    try:
        # diffusers loads .bin files with torch.load(weights_only=True); custom code is never imported.
        unet = UNet2DModel.from_pretrained(unet_dir, use_safetensors=use_st, low_cpu_mem_usage=False)
    except Exception as e:
        raise TeacherError(f"{weights[0]}: could not load teacher weights: {e}") from e
    unet.to(device).eval().requires_grad_(False)
    return Teacher(unet=unet, scheduler_config=sched, source=model, folder=folder, sha256=content_hash(folder))
