"""Pair shards: determinism, resume, memory-mapped reading and corrupt-input errors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import shipped_params
from lines_model import generation, noise, pairs
from lines_model.methods import registry
from lines_model.methods.base import Layout
from lines_model.students import init_student, save_student
from lines_model.teachers import load_teacher

KW = dict(sampler="dpmsolver++", steps=3, order=2, seed=7, batch_size=10, shard_size=20)


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return load_teacher(str(tiny_teacher))


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.startswith("shard-")}


def test_generate_then_read(teacher, tmp_path):
    m = generation.generate(teacher, tmp_path / "p", count=50, stream=noise.TRAIN, **KW)
    assert m.num_shards == 3 and len(m.shards) == 3
    store = pairs.PairStore(tmp_path / "p", verify=True)
    assert len(store) == 50
    n, c = store[45]
    assert n.shape == (3, 16, 16) and c.abs().max() <= 1.0
    # The stored noise is exactly the seed-indexed noise of that pair.
    assert torch.equal(n, noise.noise_for([45], (3, 16, 16), 7, noise.TRAIN)[0])
    assert torch.equal(c, torch.from_numpy(np.load(tmp_path / "p" / "shard-00002.clean.npy")[5]))
    sub = pairs.PairStore(tmp_path / "p", indices=[3, 44])
    assert torch.equal(sub[1][1], store[44][1])


def test_resume_after_lost_shard_is_identical(teacher, tmp_path):
    generation.generate(teacher, tmp_path / "a", count=50, stream=noise.TRAIN, **KW)
    ref = _bytes(tmp_path / "a")
    # Simulate an interruption: shard 1 never finished (no marker) and shard 2 is half-written.
    (tmp_path / "a" / "shard-00001.sha256").unlink()
    (tmp_path / "a" / "shard-00002.clean.npy").write_bytes(b"\x93NUMPY garbage")
    generation.generate(teacher, tmp_path / "a", count=50, stream=noise.TRAIN, **KW)
    assert _bytes(tmp_path / "a") == ref


def test_growing_count_keeps_complete_shards(teacher, tmp_path):
    generation.generate(teacher, tmp_path / "g", count=40, stream=noise.TRAIN, **KW)
    first = (tmp_path / "g" / "shard-00000.clean.npy").stat().st_mtime_ns
    generation.generate(teacher, tmp_path / "g", count=60, stream=noise.TRAIN, **KW)
    assert (tmp_path / "g" / "shard-00000.clean.npy").stat().st_mtime_ns == first
    generation.generate(teacher, tmp_path / "h", count=60, stream=noise.TRAIN, **KW)
    assert _bytes(tmp_path / "g") == _bytes(tmp_path / "h")


def test_other_seed_starts_afresh(teacher, tmp_path):
    generation.generate(teacher, tmp_path / "s", count=20, stream=noise.TRAIN, **KW)
    before = _bytes(tmp_path / "s")
    generation.generate(teacher, tmp_path / "s", count=20, stream=noise.TRAIN, **{**KW, "seed": 8})
    assert _bytes(tmp_path / "s") != before
    assert pairs.read_manifest(tmp_path / "s").seed == 8


def test_streams_differ(teacher, tmp_path):
    generation.generate(teacher, tmp_path / "t", count=20, stream=noise.TRAIN, **KW)
    generation.generate(teacher, tmp_path / "v", count=20, stream=noise.HELDOUT, **KW)
    a, b = pairs.PairStore(tmp_path / "t"), pairs.PairStore(tmp_path / "v")
    assert not torch.equal(a[0][0], b[0][0])


def test_incomplete_or_corrupt_folders_are_refused(teacher, tmp_path):
    with pytest.raises(pairs.PairsError, match="manifest.json: missing"):
        pairs.PairStore(tmp_path / "nothing")
    folder = tmp_path / "c"
    generation.generate(teacher, folder, count=40, stream=noise.TRAIN, **KW)
    # A manifest that lists fewer shards than its count needs is an unfinished run.
    m = json.loads((folder / "manifest.json").read_text())
    del m["shards"]["shard-00001"]
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(pairs.PairsError, match="incomplete"):
        pairs.PairStore(folder)
    generation.generate(teacher, folder, count=40, stream=noise.TRAIN, **KW)
    # A truncated shard file is named in the error.
    p = folder / "shard-00001.noise.npy"
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(pairs.PairsError, match="shard-00001.noise.npy"):
        pairs.PairStore(folder)
    # Same length but altered contents: caught by the hash check.
    generation.generate(teacher, folder, count=40, stream=noise.TRAIN, **KW)
    arr = np.load(folder / "shard-00000.clean.npy")
    arr[0, 0, 0, 0] += 0.5
    np.save(folder / "shard-00000.clean.npy", arr)
    with pytest.raises(pairs.PairsError, match="shard-00000"):
        pairs.PairStore(folder, verify=True)


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun on CPU with gloo")
def test_two_processes_write_the_same_shards(tiny_teacher, tmp_path):
    """torchrun --nproc_per_node 2: the union of both processes' shards equals a 1-process run."""
    script = tmp_path / "gen.py"
    script.write_text(
        "import sys, torch\n"
        "torch.set_num_threads(1)\n"
        "from lines_model import generation, noise, runtime\n"
        "from lines_model.teachers import load_teacher\n"
        "st = runtime.state()\n"
        "assert st.num_processes == int(__import__('os').environ.get('WORLD_SIZE', 1))\n"
        f"t = load_teacher({str(tiny_teacher)!r})\n"
        f"generation.generate(t, sys.argv[1], count=60, stream=noise.TRAIN, rank=st.process_index, "
        f"world_size=st.num_processes, barrier=st.wait_for_everyone, **{KW!r})\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "one")], check=True, env=env, capture_output=True)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            str(script),
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[rank 1]" in r.stderr  # two processes really split the shards
    assert _bytes(tmp_path / "one") == _bytes(tmp_path / "two")
    assert json.loads((tmp_path / "one" / "manifest.json").read_text()) == json.loads(
        (tmp_path / "two" / "manifest.json").read_text()
    )


def test_the_manifest_records_the_precision_and_a_resume_never_mixes_precisions(teacher, tmp_path):
    """bf16 pairs (CPU autocast here) differ from fp32 ones; the manifest says which, and a folder made at one
    precision is not continued at the other: its shards are all remade."""
    fp32 = generation.generate(teacher, tmp_path / "p", count=40, stream=noise.TRAIN, **KW)
    assert fp32.precision == "fp32" and pairs.read_manifest(tmp_path / "p").precision == "fp32"
    bf16 = generation.generate(teacher, tmp_path / "p", count=40, stream=noise.TRAIN, precision="bf16", **KW)
    assert pairs.read_manifest(tmp_path / "p").precision == "bf16"
    assert fp32.identity() != bf16.identity()
    assert set(bf16.shards.values()).isdisjoint(fp32.shards.values())
    again = generation.generate(teacher, tmp_path / "p", count=40, stream=noise.TRAIN, **KW)
    assert again.shards == fp32.shards


def test_a_manifest_of_another_format_is_refused_with_the_fix(teacher, tmp_path):
    generation.generate(teacher, tmp_path / "p", count=20, stream=noise.TRAIN, **KW)
    path = tmp_path / "p" / pairs.MANIFEST
    data = json.loads(path.read_text())
    del data["precision"]
    data["format"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(
        pairs.PairsError,
        match=(
            r"manifest.json: not a valid pairs manifest \(format 1, this code reads 2; rerun the "
            r"teacher_pairs stage\)"
        ),
    ):
        pairs.PairStore(tmp_path / "p")


def test_the_evaluations_teacher_row_runs_at_the_pairs_precision(teacher, tmp_path):
    """The teacher row reproduces its own held-out pairs exactly (MSE 0) whatever precision made them."""
    params = shipped_params()
    params = dataclasses.replace(
        params,
        pairs=dataclasses.replace(params.pairs, **KW),
        evaluate=dataclasses.replace(params.evaluate, pd_steps=(), cd_steps=()),
    )
    for precision in ("fp32", "bf16"):
        generation.generate(teacher, tmp_path / precision, count=8, stream=noise.HELDOUT, precision=precision, **KW)
        n, c = pairs.PairStore(tmp_path / precision).take(range(8))
        spec = _teacher_spec(params, teacher, tmp_path, precision)
        torch.testing.assert_close(spec.fn(n).clamp(-1, 1), c, rtol=0, atol=0)
    # fp32 generation compared with bf16 pairs is not exact: the row's precision matters.
    n, c = pairs.PairStore(tmp_path / "bf16").take(range(8))
    assert not torch.equal(_teacher_spec(params, teacher, tmp_path, "fp32").fn(n).clamp(-1, 1), c)


def _teacher_spec(params, teacher, tmp_path, precision):
    s = init_student(dataclasses.replace(params.student, init="teacher"), (3, 16, 16), teacher)
    for method in ("lines", "baseline"):
        save_student(s, Layout(tmp_path).model(method), {"method": method})
    specs = registry.generators(
        params, teacher, Layout(tmp_path), device=torch.device("cpu"), pairs_precision=precision
    )
    assert specs[0].name == "teacher"
    return specs[0]
