"""python -m lines_model.sample: any student folder, with only what the folder holds."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, shipped_params
from lines_model.sample import main
from lines_model.students import init_student, save_student
from lines_model.teachers import load_teacher


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_teacher):
    root = tmp_path_factory.mktemp("students")
    teacher = load_teacher(str(tiny_teacher))
    student_cfg = shipped_params().student
    lines = init_student(dataclasses.replace(student_cfg, init="teacher"), (3, 16, 16), teacher)
    save_student(lines, root / "lines", {"kind": "lines"})
    save_student(lines, root / "baseline", {"kind": "baseline"})
    save_student(teacher.unet, root / "pd" / "2step", {"kind": "progressive", "steps": 2}, teacher.scheduler_config)
    return root


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_lines_grid_is_deterministic_and_sized(folders, tmp_path):
    main([str(folders / "lines"), "-n", "10", "--seed", "3", "-o", str(tmp_path / "a.png"), "--nrow", "5"])
    main([str(folders / "lines"), "-n", "10", "--seed", "3", "-o", str(tmp_path / "b.png"), "--nrow", "5"])
    main([str(folders / "lines"), "-n", "10", "--seed", "4", "-o", str(tmp_path / "c.png"), "--nrow", "5"])
    a = _png(tmp_path / "a.png")
    # save_grid: 2 rows x 5 columns of 16x16 images, 1-pixel padding, enlarged 4x.
    assert a.shape == ((2 * 17 + 1) * 4, (5 * 17 + 1) * 4, 3)
    assert np.array_equal(a, _png(tmp_path / "b.png")) and not np.array_equal(a, _png(tmp_path / "c.png"))


def test_lines_steps_change_the_images_and_single_files(folders, tmp_path):
    main([str(folders / "lines"), "-n", "3", "-o", str(tmp_path / "one"), "--single"])
    main([str(folders / "lines"), "-n", "3", "--steps", "2", "-o", str(tmp_path / "two"), "--single"])
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert _png(tmp_path / "one" / "00000.png").shape == (16, 16, 3)  # the model's own resolution
    assert not np.array_equal(_png(tmp_path / "one" / "00000.png"), _png(tmp_path / "two" / "00000.png"))


def test_pd_student_samples_in_its_own_steps(folders, tmp_path):
    main([str(folders / "pd" / "2step"), "-n", "4", "-o", str(tmp_path / "pd.png")])
    assert (tmp_path / "pd.png").stat().st_size > 100
    with pytest.raises(SystemExit) as e:
        main([str(folders / "pd" / "2step"), "-n", "4", "--steps", "1", "-o", str(tmp_path / "x.png")])
    assert e.value.code == 2


def test_errors_are_one_line_naming_the_problem(folders, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lines_model.sample",
            str(folders / "baseline"),
            "--steps",
            "2",
            "-o",
            str(tmp_path / "x.png"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: --steps: {folders / 'baseline'} is a baseline student, trained at t = 0 only: it samples "
        f"in 1 step, not 2"
    )
    r = subprocess.run(
        [sys.executable, "-m", "lines_model.sample", str(tmp_path), "-o", str(tmp_path / "x.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "lines_model.json: missing; not a student folder" in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_single_images_are_the_models_pixels_whatever_the_batch_size(folders, tmp_path):
    """--single writes exactly the generated images (uint8 of the [0, 1] values), and batching changes nothing."""
    from lines_model import noise as noise_mod
    from lines_model.methods import registry

    main([str(folders / "lines"), "-n", "5", "--seed", "2", "-o", str(tmp_path / "a"), "--single", "--batch-size", "2"])
    main([str(folders / "lines"), "-n", "5", "--seed", "2", "-o", str(tmp_path / "b"), "--single", "--batch-size", "5"])
    g = registry.load(folders / "lines")
    want = g.images(noise_mod.noise_for(range(5), g.sample_shape, 2, noise_mod.EVAL), 5)
    for i in range(5):
        a, b = _png(tmp_path / "a" / f"{i:05d}.png"), _png(tmp_path / "b" / f"{i:05d}.png")
        assert np.array_equal(a, b)
        assert np.array_equal(a, (want[i].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())


def test_the_teacher_is_a_source_too(tiny_teacher, tmp_path):
    main(
        [
            str(tiny_teacher),
            "--sampler",
            "ddim",
            "--steps",
            "3",
            "-n",
            "4",
            "-o",
            str(tmp_path / "t.png"),
            "--nrow",
            "4",
        ]
    )
    assert _png(tmp_path / "t.png").shape == ((17 + 1) * 4, (4 * 17 + 1) * 4, 3)


WRONG = [
    (["-n", "0"], "error: -n: must be at least 1, got 0"),
    (["--nrow", "0"], "error: --nrow: must be at least 1, got 0"),
    (["--batch-size", "0"], "error: --batch-size: must be at least 1, got 0"),
    (["--steps", "0"], "error: --steps: must be at least 1, got 0"),
    (
        ["-o", "{tmp}/x.jpg"],
        "error: --out: {tmp}/x.jpg must end in .png (a PNG grid); use --single for one image per file",
    ),
    (
        ["-o", "{tmp}/file.png", "--single"],
        "error: --out: {tmp}/file.png is a file; with --single it is the folder that receives one PNG per image",
    ),
    (["--device", "cuda:0"], "error: --device: cuda:0 asked for, but this machine has no CUDA GPU"),
    (["--device", "banana"], "error: --device: "),
    (["--stesp", "2"], "error: unrecognized arguments: --stesp 2"),
]


@pytest.mark.parametrize("extra, message", WRONG, ids=[" ".join(w[0]) for w in WRONG])
def test_every_wrong_usage_is_one_line_and_exit_2(folders, tmp_path, capsys, extra, message):
    if torch.cuda.is_available() and "cuda" in " ".join(extra):
        pytest.skip("a CUDA machine accepts --device cuda")
    (tmp_path / "file.png").write_bytes(b"x")
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    argv = [str(folders / "lines"), "-o", str(tmp_path / "g.png"), *extra]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(message.replace("{tmp}", str(tmp_path))), err


def test_the_teacher_samples_as_the_pipelines_pairs(tiny_teacher, tmp_path, monkeypatch):
    """With no sampler flags, the teacher is the pairs' sampler of params.yaml (sampler, steps, order,
    lambda_min, precision): on the pairs' own noise its images are the pairs' teacher images."""
    import yaml

    from conftest import micro_params
    from lines_model import generation, noise as noise_mod
    from lines_model.config import parse_params
    from lines_model.imaging import to_unit
    from lines_model.pairs import PairStore

    p = parse_params(yaml.safe_load(micro_params())).pairs
    assert p.sampler == "dpmsolver++" and p.lambda_min is not None  # the settings a plain default would miss
    teacher = load_teacher(str(tiny_teacher))
    generation.generate(
        teacher,
        tmp_path / "heldout",
        count=4,
        stream=noise_mod.HELDOUT,
        sampler=p.sampler,
        steps=p.steps,
        order=p.order,
        lambda_min=p.lambda_min,
        seed=p.seed,
        batch_size=4,
        shard_size=4,
    )
    clean = to_unit(PairStore(tmp_path / "heldout").take(range(4))[1])
    want = (clean.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()  # as the PNGs hold them
    (tmp_path / "params.yaml").write_text(micro_params())
    monkeypatch.chdir(tmp_path)  # the params.yaml the sampler settings are read from

    def sample(name, *flags):
        main(
            [str(tiny_teacher), "--heldout", "heldout", "-n", "4", "--batch-size", "4", "--single", "-o", name, *flags]
        )
        return np.stack([_png(tmp_path / name / f"{i:05d}.png") for i in range(4)])

    assert np.array_equal(sample("pairs"), want)
    # Each flag still overrides its setting, and a plain grid (the former default) is another sampler.
    assert not np.array_equal(sample("plain", "--lambda-min", "none"), want)
    assert not np.array_equal(sample("order1", "--order", "1"), want)
    assert np.array_equal(
        sample(
            "explicit",
            "--sampler",
            p.sampler,
            "--steps",
            str(p.steps),
            "--order",
            str(p.order),
            "--lambda-min",
            str(p.lambda_min),
        ),
        want,
    )
