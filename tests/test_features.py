"""The shapes feature net (lines_model.features) and the torch-fidelity glue (lines_model.fidelity)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lines_model import features, fidelity, shapes

N = 300
# Fresh held-out indices: disjoint from training [0, 1e6) and from the evaluation range of accuracy.json.
FRESH = 30_000_000


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shipped():
    return features.load_feature_net(features.DEFAULT_FEATURE_DIR)


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


def test_shipped_net_classifies_fresh_heldout_images(shipped):
    x, f = shapes.images(np.arange(FRESH, FRESH + 500))
    with torch.no_grad():
        out = shipped(x)
    acc = {name: (out[name].argmax(1) == getattr(f, name)).float().mean().item() for name in features.HEADS}
    assert acc["shape"] >= 0.97, acc
    assert acc["foreground"] >= 0.97, acc
    assert acc["background"] >= 0.97, acc
    feats = shipped.features(x)
    assert feats.shape == (500, shipped.config.feature_dim)
    assert (feats >= 0).all()  # taken after a ReLU
    assert (feats > 0).any(0).float().mean() > 0.5  # most feature dimensions are alive


def test_shipped_weights_are_small():
    size = (features.DEFAULT_FEATURE_DIR / features.WEIGHTS_FILE).stat().st_size
    assert size <= 5 * 2**20


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = features.ShapesFeatureNet(widths=(8, 16, 16), feature_dim=32)
    net.train()
    with torch.no_grad():  # move the BatchNorm running statistics away from their init
        for _ in range(3):
            net(torch.rand(16, 3, 16, 16))
    net.eval()
    features.save_feature_net(net, tmp_path / "net", extra_files={"notes.txt": "hello\n"})
    assert sorted(p.name for p in (tmp_path / "net").iterdir()) == ["config.json", "model.safetensors", "notes.txt"]
    loaded = features.load_feature_net(tmp_path / "net")
    assert loaded.config == net.config
    x = torch.rand(10, 3, 16, 16)
    with torch.no_grad():
        a, b = net(x), loaded(x)
        assert torch.equal(net.features(x), loaded.features(x))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_missing_weights_file_is_named(tmp_path):
    net = features.ShapesFeatureNet(widths=(4, 4, 4), feature_dim=8)
    features.save_feature_net(net, tmp_path / "net")
    (tmp_path / "net" / "model.safetensors").unlink()
    torch.save(net.state_dict(), tmp_path / "net" / "model.bin")  # pickles are never loaded
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        features.load_feature_net(tmp_path / "net")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        fidelity.register_shapes_extractor(tmp_path / "net")


def test_bad_config_is_rejected(tmp_path):
    net = features.ShapesFeatureNet(widths=(4, 4, 4), feature_dim=8)
    features.save_feature_net(net, tmp_path / "net")
    (tmp_path / "net" / "config.json").write_text('{"feature_dim": 8, "widths": [4, 4, 4], "typo": 1}')
    with pytest.raises(ValueError, match="typo"):
        features.load_feature_net(tmp_path / "net")


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
    real = fidelity.compute_fidelity(b, a, "shapes-features", kid_subset_size=100)
    blurred = fidelity.compute_fidelity(_blur(b), a, "shapes-features", kid_subset_size=100)
    corrupted = fidelity.compute_fidelity(noisy, a, "shapes-features", kid_subset_size=100)
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
    assert fidelity.register_shapes_extractor() == "shapes-features"
    assert fidelity.register_shapes_extractor(features.DEFAULT_FEATURE_DIR) == "shapes-features"
    torch.manual_seed(1)
    features.save_feature_net(features.ShapesFeatureNet(widths=(8, 8, 8), feature_dim=16), tmp_path / "rand")
    name = fidelity.register_shapes_extractor(tmp_path / "rand")
    assert name != "shapes-features" and name.startswith("shapes-features-")
    assert fidelity.register_shapes_extractor(tmp_path / "rand") == name
    a, b = real_sets
    shipped = fidelity.compute_fidelity(a[:100], b[:100], "shapes-features", kid_subset_size=50)
    rand = fidelity.compute_fidelity(a[:100], b[:100], "shapes-features", feature_dir=tmp_path / "rand",
                                     kid_subset_size=50)
    assert rand["fid"] != shipped["fid"]  # a different net really was used


def test_bad_arguments_are_named(real_sets):
    a, b = real_sets
    with pytest.raises(ValueError, match="feature_extractor"):
        fidelity.compute_fidelity(a, b, "vgg16")
    with pytest.raises(ValueError, match="feature_dir"):
        fidelity.compute_fidelity(a, b, "inception-v3-compat", feature_dir="somewhere")
    with pytest.raises(ValueError, match="kid_subset_size"):
        fidelity.compute_fidelity(a, b, "shapes-features", kid_subset_size=1)
    with pytest.raises(ValueError, match="prc_neighborhood"):
        fidelity.compute_fidelity(a[:3], b[:3], "shapes-features", prc_neighborhood=3)
    with pytest.raises(ValueError, match="generated"):
        fidelity.compute_fidelity((a * 255).to(torch.uint8), b, "shapes-features")
