"""lines_model.fidelity and lines_model.extractors (features once, metrics from them) and tools/prefetch's writer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from PIL import Image

from lines_model import extractors, features, fidelity, shapes
from tools import prefetch

N = 300
# Fresh held-out indices: disjoint from training [0, 1e6) and from the evaluation range of accuracy.json.
FRESH = 30_000_000


@pytest.fixture(scope="module")
def real_sets():
    a, _ = shapes.images(np.arange(FRESH + 10_000, FRESH + 10_000 + N))
    b, _ = shapes.images(np.arange(FRESH + 20_000, FRESH + 20_000 + N))
    return a, b


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16
    w = k.expand(3, 1, 3, 3).contiguous()
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), w, groups=3)


# ---- metrics on the shapes feature net (moved from test_features.py) ---------------------------


def test_fid_of_a_set_with_itself_is_zero(real_sets):
    a, _ = real_sets
    m = fidelity.compute_fidelity(a, a, "shapes-features", kid_subset_size=100)
    assert set(m) == {"fid", "kid", "precision", "recall"}
    assert abs(m["fid"]) < 1e-3, m
    # KID's subsets of the two copies overlap, so its unbiased estimate comes out slightly negative.
    assert m["kid"] < 0.01, m
    assert m["precision"] == 1.0 and m["recall"] == 1.0


def test_fid_separates_real_from_corrupted(real_sets):
    a, b = real_sets
    g = torch.Generator().manual_seed(0)
    # Well above the training noise (per-image std up to 0.06), to which the net is made insensitive.
    noisy = (b + 0.2 * torch.randn(b.shape, generator=g)).clamp(0, 1)
    ref = fidelity.extract_features(a, "shapes-features")  # once for the three comparisons
    real, blurred, corrupted = (
        fidelity.metrics_from_features(fidelity.extract_features(x, "shapes-features"), ref, kid_subset_size=100)
        for x in (b, _blur(b), noisy)
    )
    for m in (real, blurred, corrupted):
        assert 0.0 <= m["precision"] <= 1.0 and 0.0 <= m["recall"] <= 1.0, m
    assert blurred["fid"] > 3 * real["fid"], (real, blurred)
    assert corrupted["fid"] > 3 * real["fid"], (real, corrupted)
    assert blurred["kid"] > real["kid"] and corrupted["kid"] > real["kid"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8, real


def test_kid_subset_larger_than_n_is_clamped(real_sets):
    a, b = real_sets
    m = fidelity.compute_fidelity(a[:50], b[:60], "shapes-features", kid_subset_size=10_000, kid_subsets=10)
    assert np.isfinite(m["kid"]) and np.isfinite(m["fid"])


def test_register_is_idempotent_and_binds_the_folder(tmp_path, real_sets):
    assert extractors.register_shapes_extractor() == "shapes-features"
    assert extractors.register_shapes_extractor(features.DEFAULT_FEATURE_DIR) == "shapes-features"
    torch.manual_seed(1)
    features.save_feature_net(features.ShapesFeatureNet(widths=(8, 8, 8), feature_dim=16), tmp_path / "rand")
    name = extractors.register_shapes_extractor(tmp_path / "rand")
    assert name != "shapes-features" and name.startswith("shapes-features-")
    assert extractors.register_shapes_extractor(tmp_path / "rand") == name
    a, b = real_sets
    shipped = fidelity.compute_fidelity(a[:100], b[:100], "shapes-features", kid_subset_size=50)
    rand = fidelity.compute_fidelity(
        a[:100], b[:100], "shapes-features", feature_dir=tmp_path / "rand", kid_subset_size=50
    )
    assert rand["fid"] != shipped["fid"]  # a different net really was used
    assert fidelity.extract_features(a[:5], "shapes-features", feature_dir=tmp_path / "rand").shape == (5, 16)


def test_bad_arguments_are_named(real_sets):
    a, b = real_sets
    with pytest.raises(ValueError, match="feature_extractor"):
        fidelity.compute_fidelity(a, b, "vgg16")
    with pytest.raises(ValueError, match="feature_dir"):
        fidelity.compute_fidelity(a, b, "inception-v3-compat", feature_dir="somewhere")
    with pytest.raises(ValueError, match="weights_path"):
        fidelity.compute_fidelity(a, b, "shapes-features", weights_path="somewhere.pth")
    with pytest.raises(ValueError, match="kid_subset_size"):
        fidelity.compute_fidelity(a, b, "shapes-features", kid_subset_size=1)
    with pytest.raises(ValueError, match="prc_neighborhood"):
        fidelity.compute_fidelity(a[:3], b[:3], "shapes-features", prc_neighborhood=3)
    with pytest.raises(ValueError, match="generated"):
        fidelity.compute_fidelity((a * 255).to(torch.uint8), b, "shapes-features")
    with pytest.raises(ValueError, match="batch_size"):
        fidelity.compute_fidelity(a, b, "shapes-features", batch_size=0)
    with pytest.raises(ValueError, match="extractor"):
        fidelity.extract_features(a, "vgg16")
    with pytest.raises(ValueError, match="images01"):
        fidelity.extract_features(a[0], "shapes-features")
    f = torch.rand(10, 4)
    with pytest.raises(ValueError, match="gen"):
        fidelity.metrics_from_features(f[:, :3], f, kid_subset_size=5)
    with pytest.raises(ValueError, match="ref"):
        fidelity.metrics_from_features(f, torch.full_like(f, math.nan), kid_subset_size=5)
    with pytest.raises(ValueError, match="kid_subsets"):
        fidelity.metrics_from_features(f, f, kid_subset_size=5, kid_subsets=0)


# ---- features once, then metrics -----------------------------------------------------------------


def test_metrics_from_features_equal_torch_fidelity_on_the_images(real_sets):
    """The feature route gives exactly what one torch-fidelity call on the images gives."""
    a, b = real_sets
    gen, ref = a[:120], b[:100]
    g = fidelity.extract_features(gen, "shapes-features")
    r = fidelity.extract_features(ref, "shapes-features")
    assert g.shape == (120, 128) and r.shape == (100, 128) and g.dtype == torch.float32
    ours = fidelity.metrics_from_features(g, r, kid_subset_size=50, kid_subsets=20, prc_neighborhood=3, seed=7)
    to_u8 = lambda x: fidelity._UInt8Images((x * 255).round().to(torch.uint8))  # noqa: E731
    theirs = torch_fidelity.calculate_metrics(
        input1=to_u8(gen),
        input2=to_u8(ref),
        fid=True,
        kid=True,
        prc=True,
        feature_extractor="shapes-features",
        kid_subset_size=50,
        kid_subsets=20,
        prc_neighborhood=3,
        rng_seed=7,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
        cuda=torch.cuda.is_available(),
    )
    assert ours == {
        "fid": theirs["frechet_inception_distance"],
        "kid": theirs["kernel_inception_distance_mean"],
        "precision": theirs["precision"],
        "recall": theirs["recall"],
    }
    via_images = fidelity.compute_fidelity(gen, ref, "shapes-features", kid_subset_size=50, kid_subsets=20, seed=7)
    assert via_images == ours


# ---- Inception, offline ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory) -> Path:
    return extractors.save_random_inception_weights(tmp_path_factory.mktemp("inception") / "weights.pth", seed=0)


def test_inception_features_from_a_local_weights_file(random_inception, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("the weights must come from the local file")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", no_download)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    f = fidelity.extract_features(x, "inception-v3-compat", weights_path=random_inception)
    assert f.shape == (4, 2048) and f.dtype == torch.float32
    assert torch.isfinite(f).all() and f.std() > 1e-3  # random He-init weights keep the features alive


class _Payload:
    """Unpickling this runs `Path.touch(marker)`: a stand-in for code hidden in a weights file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_bad_weights_files_are_named_and_never_run(tmp_path, random_inception):
    x = torch.rand(2, 3, 32, 32)

    def extract(path):
        return fidelity.extract_features(x, "inception-v3-compat", weights_path=path)

    with pytest.raises(FileNotFoundError, match="missing.pth"):
        extract(tmp_path / "missing.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        extract(tmp_path / "garbage.pth")
    marker = tmp_path / "code-ran"
    torch.save({"fc.weight": torch.zeros(1), "payload": _Payload(marker)}, tmp_path / "pickle.pth")
    with pytest.raises(ValueError, match="pickle.pth"):
        extract(tmp_path / "pickle.pth")
    assert not marker.exists()
    torch.load(tmp_path / "pickle.pth", weights_only=False)  # what torch-fidelity itself would do
    assert marker.exists()
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "other-net.pth")
    with pytest.raises(ValueError, match="other-net.pth"):
        extract(tmp_path / "other-net.pth")
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="list.pth"):
        extract(tmp_path / "list.pth")


# ---- reference images and tools/prefetch's writer --------------------------------------------------


def test_prefetch_writes_a_dataset_as_one_uint8_array(tmp_path):
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)  # three 5x4 RGB images
    items = [
        (Image.fromarray(hwc[0]), 7),  # torchvision: (PIL image, label)
        (torch.from_numpy(hwc[1].transpose(2, 0, 1).copy()), 1),  # uint8 tensor (3, H, W), label
        torch.from_numpy(hwc[2].transpose(2, 0, 1).copy()),  # torch-fidelity's inputs: the image alone
    ]
    path = prefetch.write_images(tmp_path / "data" / "set.npy", items)
    a = np.load(path)
    assert a.dtype == np.uint8 and a.shape == (3, 3, 5, 4)
    assert np.array_equal(a, hwc.transpose(0, 3, 1, 2))
    assert sorted(p.name for p in path.parent.iterdir()) == ["set.npy"]  # no temporary left behind
    x = fidelity.load_reference_images(path)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 5, 4)
    assert torch.equal((x * 255).round().to(torch.uint8), torch.from_numpy(a))
    np.save(tmp_path / "hwc.npy", hwc)  # (n, H, W, 3) is read as well
    assert torch.equal(fidelity.load_reference_images(tmp_path / "hwc.npy"), x)
    with pytest.raises(ValueError, match=r"items\[1\]"):
        prefetch.to_uint8_images([items[0], (torch.zeros(3, 5, 4), 0)])  # float
    with pytest.raises(ValueError, match=r"items\[1\]"):
        prefetch.to_uint8_images([items[0], torch.zeros(3, 4, 4, dtype=torch.uint8)])  # another size
    with pytest.raises(ValueError, match="items"):
        prefetch.to_uint8_images([])


def test_prefetch_reads_cifar10_through_torch_fidelity_registry(tmp_path, monkeypatch):
    """The plumbing of --cifar10-train, with a fake registered "cifar10-train" instead of the download."""
    calls = []
    images = [torch.full((3, 32, 32), i, dtype=torch.uint8) for i in range(3)]  # what Cifar10_RGB returns

    def fake(root, download):
        calls.append((root, download))
        return images

    monkeypatch.setitem(torch_fidelity.registry.DATASETS_REGISTRY, "cifar10-train", fake)
    monkeypatch.setattr(prefetch, "CIFAR10_TRAIN_SIZE", 3)
    path = prefetch.fetch_cifar10_train(tmp_path / "cifar.npy", datasets_root=tmp_path / "downloads")
    assert calls == [(str(tmp_path / "downloads"), True)]
    assert np.array_equal(np.load(path), torch.stack(images).numpy())
    monkeypatch.setattr(prefetch, "CIFAR10_TRAIN_SIZE", 50000)
    with pytest.raises(RuntimeError, match="50000"):
        prefetch.fetch_cifar10_train(tmp_path / "other.npy", datasets_root=tmp_path / "downloads")


def test_bad_reference_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.npy"):
        fidelity.load_reference_images(tmp_path / "none.npy")
    cases = {
        "float.npy": np.zeros((2, 3, 4, 4), dtype=np.float32),
        "flat.npy": np.zeros((2, 48), dtype=np.uint8),
        "gray.npy": np.zeros((2, 1, 4, 4), dtype=np.uint8),
        "objects.npy": np.array([{"a": 1}], dtype=object),
    }
    for name, a in cases.items():
        np.save(tmp_path / name, a, allow_pickle=True)
        with pytest.raises(ValueError, match=name):
            fidelity.load_reference_images(tmp_path / name)
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(ValueError, match="text.npy"):
        fidelity.load_reference_images(tmp_path / "text.npy")
