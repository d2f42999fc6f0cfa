"""The shapes feature net (lines_model.features); its torch-fidelity glue is tested in test_fidelity.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lines_model import extractors, features, shapes

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
        extractors.register_shapes_extractor(tmp_path / "net")


def test_bad_config_is_rejected(tmp_path):
    net = features.ShapesFeatureNet(widths=(4, 4, 4), feature_dim=8)
    features.save_feature_net(net, tmp_path / "net")
    (tmp_path / "net" / "config.json").write_text('{"feature_dim": 8, "widths": [4, 4, 4], "typo": 1}')
    with pytest.raises(ValueError, match="typo"):
        features.load_feature_net(tmp_path / "net")
