"""python -m lines_model score: the pipeline's metrics of any images, the same numbers the evaluation computes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml

from conftest import ROOT, micro_params, shipped_params
from lines_model import noise as noise_mod
from lines_model.methods import registry
from lines_model.config import parse_params
from lines_model.evaluation import Features
from lines_model.sample import main as sample_main
from lines_model.score import main as score_main
from lines_model.students import init_student, save_student
from lines_model.teachers import load_teacher


def test_scoring_a_students_own_samples_gives_the_evaluations_numbers(tiny_teacher, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the micro params name the shipped feature net by its relative path
    (tmp_path / "params.yaml").write_text(micro_params())
    params = parse_params(yaml.safe_load(micro_params()))
    teacher = load_teacher(str(tiny_teacher))
    student = init_student(dataclasses.replace(shipped_params().student, init="teacher"), (3, 16, 16), teacher)
    save_student(student, tmp_path / "lines", {"kind": "lines"})
    reference = np.random.default_rng(0).integers(0, 256, size=(40, 3, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "ref.npy", reference)

    # What the evaluation computes for this student on the sample CLI's noise.
    g = registry.load(tmp_path / "lines", steps=2)
    feats = Features(params.evaluate)
    want = feats.metrics(
        feats(g.images(noise_mod.noise_for(range(40), g.sample_shape, 5, noise_mod.EVAL), 16)), feats(_unit(reference))
    )

    sample_main(
        [str(tmp_path / "lines"), "--steps", "2", "-n", "40", "--seed", "5", "-o", str(tmp_path / "s"), "--single"]
    )
    score_main(
        [
            str(tmp_path / "s"),
            "--reference",
            str(tmp_path / "ref.npy"),
            "--params",
            str(tmp_path / "params.yaml"),
            "-o",
            str(tmp_path / "scores.json"),
        ]
    )
    got = json.loads((tmp_path / "scores.json").read_text())
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert set(got) == {"fid", "fid_se", "kid", "kid_se", "precision", "precision_se", "recall", "recall_se"}


def _unit(uint8: np.ndarray):
    import torch

    return torch.from_numpy(uint8).float() / 255


@pytest.mark.parametrize(
    "images, message",
    [
        ("missing", "missing: not a folder of PNGs nor a .npy file"),
        ("empty", "empty: holds no .png images"),
        ("bad.npy", "bad.npy: expected uint8 images"),
    ],
)
def test_bad_images_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, images, message):
    monkeypatch.chdir(ROOT)
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "bad.npy", np.zeros((4, 3, 16, 16), dtype=np.float32))
    with pytest.raises(SystemExit) as e:
        score_main([str(tmp_path / images), "--reference", str(tmp_path / "bad.npy")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and message in err, err


def test_few_images_are_scored_with_a_warning_and_too_few_refused_by_count(tmp_path, monkeypatch, capsys):
    """The smallest scorable set holds 2 (prc_neighborhood + 1) images: precision and recall's errors find the k
    nearest neighbours within halves. At that count the scores print, with a warning that they are
    biased and that KID's subsets are cut; one image fewer is refused naming the count it needs."""
    from lines_model.score import WARN_BELOW, minimum_count

    monkeypatch.chdir(ROOT)
    k = shipped_params().evaluate.prc_neighborhood
    need = minimum_count(k)
    assert need == 2 * (k + 1) and need < WARN_BELOW
    rng = np.random.default_rng(0)
    for n in (need - 1, need, 40):
        np.save(tmp_path / f"{n}.npy", rng.integers(0, 256, size=(n, 3, 16, 16), dtype=np.uint8))
    score_main([str(tmp_path / f"{need}.npy"), "--reference", str(tmp_path / "40.npy")])
    out, err = capsys.readouterr()
    kid_subset = shipped_params().evaluate.kid_subset_size
    assert err.splitlines() == [
        f"warning: {need} images against 40: with fewer than {WARN_BELOW} images in a set the scores are strongly "
        "biased (FID upwards) and noisy; compare only scores made with the same counts",
        f"warning: KID uses subsets of {need} images, the smaller set's count, instead of {kid_subset}",
    ]
    assert out.splitlines()[-1] == f"({need} images against 40; evaluate settings of params.yaml)"
    with pytest.raises(SystemExit) as e:
        score_main([str(tmp_path / f"{need - 1}.npy"), "--reference", str(tmp_path / "40.npy")])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / f'{need - 1}.npy'}: {need - 1} images, too few to score: the metrics need at least {need} "
        f"in each set (precision and recall find each image's {k} nearest neighbours within halves of a set)\n"
    )
