"""load_teacher: flat and pipeline layouts, the hub-id path through a local HF cache, and its errors.

No network: the hub path is exercised with a hand-built Hugging Face cache holding a random-weight
model with the architecture of google/ddpm-cifar10-32, with the hub in offline mode.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file

from lines_model import teachers
from lines_model.teachers import TeacherError, content_hash, load_teacher, resolve
from tools.random_teacher import save_random_cifar_teacher

HUB_ID = "google/ddpm-cifar10-32"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cifar_teacher(tmp_path_factory) -> Path:
    """Random weights in the flat layout of google/ddpm-cifar10-32 (config.json, weights, scheduler_config.json)."""
    return save_random_cifar_teacher(tmp_path_factory.mktemp("cifar") / "ddpm-cifar10-32")


def _small_unet(seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=8,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )


def _small_flat(folder: Path, seed: int = 0) -> Path:
    _small_unet(seed).save_pretrained(folder)
    DDPMScheduler(prediction_type="v_prediction").save_pretrained(folder)
    return folder


def _assert_same_weights(unet: torch.nn.Module, weights_file: Path):
    saved = load_file(weights_file)
    state = unet.state_dict()
    assert set(saved) == set(state)
    for k, v in saved.items():
        assert torch.equal(state[k].cpu(), v), k


def _offline_cache(monkeypatch, cache: Path):
    """Point huggingface_hub at `cache` in offline mode.

    huggingface_hub reads HF_HUB_CACHE / HF_HUB_OFFLINE from the environment once, at import,
    into huggingface_hub.constants; snapshot_download and the HTTP hook read those module
    attributes at call time, so patching them (plus the environment, for anything imported later)
    is what takes effect.
    """
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HOME", str(cache.parent / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _hub_cache(root: Path, files_from: Path) -> Path:
    """The cache layout snapshot_download writes: blobs/, snapshots/<commit>/ links, refs/main."""
    repo = root / ("models--" + HUB_ID.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for i, f in enumerate(sorted(files_from.iterdir())):
        blob = repo / "blobs" / f"{i:040x}"
        try:
            os.link(f, blob)  # no 143 MB copy when the tmp dirs share a file system
        except OSError:
            shutil.copyfile(f, blob)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    return snap


# ---- flat layout with the google/ddpm-cifar10-32 architecture ---------------------------------


def test_cifar10_config_has_the_size_of_google_ddpm_cifar10_32(cifar_teacher):
    n = sum(p.numel() for p in UNet2DModel.from_pretrained(cifar_teacher).parameters())
    assert n == 35_746_307  # like the hub checkpoint
    assert sorted(p.name for p in cifar_teacher.iterdir()) == ["config.json", WEIGHTS, "scheduler_config.json"]


def test_load_teacher_from_flat_folder(cifar_teacher):
    t = load_teacher(str(cifar_teacher))
    assert t.sample_shape == (3, 32, 32)
    assert t.scheduler_config["clip_sample"] is True
    assert t.scheduler_config["prediction_type"] == "epsilon"
    assert t.scheduler_config["beta_schedule"] == "linear"
    assert t.scheduler_config["num_train_timesteps"] == 1000
    assert t.folder == cifar_teacher and t.source == str(cifar_teacher)
    assert t.sha256 == content_hash(cifar_teacher)
    assert not t.unet.training and not any(p.requires_grad for p in t.unet.parameters())
    _assert_same_weights(t.unet, cifar_teacher / WEIGHTS)
    with torch.no_grad():
        out = t.unet(torch.zeros(1, *t.sample_shape), torch.tensor(10)).sample
    assert out.shape == (1, 3, 32, 32)


# ---- hub ids -----------------------------------------------------------------------------------


def test_hub_id_loads_from_the_local_hf_cache_offline(cifar_teacher, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    _offline_cache(monkeypatch, cache)
    monkeypatch.chdir(tmp_path)  # no ./google folder can shadow the hub id
    snap = _hub_cache(cache, cifar_teacher)

    assert resolve(HUB_ID) == snap
    t = load_teacher(HUB_ID)
    assert t.folder == snap and t.source == HUB_ID
    assert t.sample_shape == (3, 32, 32)
    assert t.scheduler_config["clip_sample"] is True and t.scheduler_config["prediction_type"] == "epsilon"
    _assert_same_weights(t.unet, cifar_teacher / WEIGHTS)
    # the identity of a teacher is its content, not where it was read from
    assert t.sha256 == content_hash(cifar_teacher)
    # an explicit commit hash resolves to the same snapshot
    assert resolve(HUB_ID, revision=COMMIT) == snap


def test_hub_id_missing_from_cache_offline_fails_fast_with_a_fix(tmp_path, monkeypatch):
    _offline_cache(monkeypatch, tmp_path / "empty-hub")
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    with pytest.raises(TeacherError) as info:
        load_teacher(HUB_ID)
    assert time.monotonic() - start < 10
    msg = str(info.value)
    assert HUB_ID in msg
    assert "teacher.model" in msg and "local folder" in msg
    assert "config.json" in msg and "scheduler_config.json" in msg  # what such a folder must hold
    assert "huggingface-cli download" in msg  # or how to cache it with network access
    assert not list((tmp_path / "empty-hub").rglob("*.safetensors"))


def test_local_folder_named_like_a_hub_id_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _offline_cache(monkeypatch, tmp_path / "empty-hub")
    local = _small_flat(tmp_path / "google" / "ddpm-cifar10-32")
    assert resolve(HUB_ID) == Path(HUB_ID)
    assert load_teacher(HUB_ID).folder.resolve() == local.resolve()


# ---- layouts and errors ------------------------------------------------------------------------


def test_pipeline_layout_loads(tmp_path):
    folder = tmp_path / "pipe"
    unet = _small_unet()
    unet.save_pretrained(folder / "unet")
    DDPMScheduler(prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2").save_pretrained(
        folder / "scheduler"
    )
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    t = load_teacher(str(folder))
    assert t.sample_shape == (3, 8, 8)
    assert t.scheduler_config["prediction_type"] == "v_prediction"
    assert t.scheduler_config["beta_schedule"] == "squaredcos_cap_v2"
    _assert_same_weights(t.unet, folder / "unet" / WEIGHTS)
    assert t.sha256 == content_hash(folder)


def test_missing_weights_are_named(tmp_path):
    folder = _small_flat(tmp_path / "t")
    (folder / WEIGHTS).unlink()
    with pytest.raises(TeacherError, match=r"no weights.*diffusion_pytorch_model\.safetensors") as info:
        load_teacher(str(folder))
    assert str(folder) in str(info.value)


def test_missing_scheduler_config_is_named(tmp_path):
    folder = _small_flat(tmp_path / "t")
    (folder / "scheduler_config.json").unlink()
    with pytest.raises(TeacherError, match=r"scheduler_config\.json: missing") as info:
        load_teacher(str(folder))
    assert str(folder / "scheduler_config.json") in str(info.value)


def test_missing_scheduler_folder_in_pipeline_layout_is_named(tmp_path):
    folder = tmp_path / "pipe"
    _small_unet().save_pretrained(folder / "unet")
    with pytest.raises(TeacherError, match=r"scheduler_config\.json: missing") as info:
        load_teacher(str(folder))
    assert str(folder / "scheduler" / "scheduler_config.json") in str(info.value)


def test_nonexistent_local_path_is_named(tmp_path):
    missing = tmp_path / "no-such-teacher"
    with pytest.raises(TeacherError, match="does not exist") as info:
        load_teacher(str(missing))
    assert str(missing) in str(info.value)
    with pytest.raises(TeacherError, match="does not exist") as info:
        load_teacher("teachers/a/b")  # not owner/name either
    assert "teachers/a/b" in str(info.value)


def test_folder_without_config_and_file_paths_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TeacherError, match=r"not a diffusers model folder.*config\.json"):
        load_teacher(str(tmp_path / "empty"))
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    with pytest.raises(TeacherError, match="is a file"):
        load_teacher(str(tmp_path / "weights.safetensors"))


def test_non_unet_class_is_refused(tmp_path):
    folder = _small_flat(tmp_path / "t")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, _class_name="UNet2DConditionModel")))
    with pytest.raises(TeacherError, match="UNet2DConditionModel"):
        load_teacher(str(folder))


def test_corrupt_weights_raise_teacher_error_naming_the_file(tmp_path):
    folder = _small_flat(tmp_path / "t")
    (folder / WEIGHTS).write_bytes(b"not a safetensors file")
    with pytest.raises(TeacherError, match=r"diffusion_pytorch_model\.safetensors: could not load"):
        load_teacher(str(folder))


# ---- no shipped code runs ----------------------------------------------------------------------


class _Trap:
    """Unpickling this object creates `path` (what a malicious .bin checkpoint could do)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_python_files_in_the_model_folder_are_never_imported(tmp_path, monkeypatch):
    folder = _small_flat(tmp_path / "t")
    marker = tmp_path / "code-ran"
    code = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    for name in ("__init__.py", "modeling.py", "unet.py", "pipeline.py", "scheduler.py", "diffusion_pytorch_model.py"):
        (folder / name).write_text(code)
    # a config that asks for custom code does not get it either
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, auto_map={"AutoModel": "modeling.UNet"})))
    monkeypatch.chdir(tmp_path)  # "t" is also importable from the working directory
    monkeypatch.syspath_prepend(str(tmp_path))
    load_teacher(str(folder))
    load_teacher("t")
    assert not marker.exists()
    # the trap itself works: importing it does create the marker
    exec(compile(code, "trap", "exec"), {})
    assert marker.exists()


def test_pickled_bin_weights_load_without_running_code(tmp_path):
    folder = tmp_path / "t"
    unet = _small_unet()
    unet.save_pretrained(folder, safe_serialization=False)
    DDPMScheduler().save_pretrained(folder)
    assert (folder / "diffusion_pytorch_model.bin").exists() and not (folder / WEIGHTS).exists()
    t = load_teacher(str(folder))  # a plain state dict loads with weights_only=True
    for k, v in unet.state_dict().items():
        assert torch.equal(t.unet.state_dict()[k], v)

    marker = tmp_path / "code-ran"
    state = dict(unet.state_dict())
    state["trap"] = _Trap(str(marker))
    torch.save(state, folder / "diffusion_pytorch_model.bin")
    with pytest.raises(TeacherError, match=r"diffusion_pytorch_model\.bin: could not load"):
        load_teacher(str(folder))
    assert not marker.exists()
    # the trap is real: a full unpickle does run it
    torch.load(folder / "diffusion_pytorch_model.bin", weights_only=False)
    assert marker.exists()


# ---- identity ----------------------------------------------------------------------------------


def test_content_hash_follows_the_content(tmp_path):
    a = _small_flat(tmp_path / "a", seed=0)
    h = content_hash(a)
    assert len(h) == 64 and h == load_teacher(str(a)).sha256
    # a copy elsewhere is the same teacher
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "README.md").write_text("not part of the identity")
    assert content_hash(b) == h

    # new weights, same config: a different teacher
    _small_unet(seed=1).save_pretrained(b)
    assert content_hash(b) != h
    assert load_teacher(str(b)).sha256 == content_hash(b)

    # same weights, different schedule: also a different teacher
    c = tmp_path / "c"
    shutil.copytree(a, c)
    DDPMScheduler(prediction_type="epsilon").save_pretrained(c)
    assert content_hash(c) != h

    # a single changed byte in the weights changes it
    d = tmp_path / "d"
    shutil.copytree(a, d)
    data = bytearray((d / WEIGHTS).read_bytes())
    data[-1] ^= 1
    (d / WEIGHTS).write_bytes(bytes(data))
    assert content_hash(d) != h


def test_hub_download_never_asks_for_python_files(monkeypatch, tmp_path):
    """_hub_download restricts snapshot_download to configs and weights (no *.py)."""
    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append((repo_id, revision, allow_patterns, kw))
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert teachers._hub_download(HUB_ID, "main") == tmp_path
    ((repo_id, revision, patterns, kw),) = calls
    assert (repo_id, revision, kw.get("local_files_only")) == (HUB_ID, "main", True)
    assert not any(p.endswith(".py") or p == "*" for p in patterns)
    assert {"*.json", "*.safetensors"} <= set(patterns)
