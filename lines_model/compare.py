"""Seed replicates of the Lines-versus-baseline comparison (`make compare`: the compare stage, stages/compare.py).

Trains both students once per seed (train_lines.seed = train_baseline.seed = s: initial noise
of a random init, data order, Lines' t) on the pipeline's pairs, evaluates Lines 1-step, Lines
2-step and the baseline on the held-out set as the evaluate stage does, and writes, per generator
and metric, the mean over seeds and its standard error (sample std / sqrt(seeds)): `seed_mean` and
`seed_se`, names that no key of metrics/evaluate.json (`fid_se`) can meet once DVC flattens both
(`lines_1step.fid.seed_se`, never `lines_1step.fid.se`). The seed that
params.yaml already uses is not trained again: the pipeline's own students are that replicate.
The seeds share the held-out evaluation set, so their spread leaves out which 500 samples were
drawn: each entry also carries `eval_se`, the evaluation's own standard error (half-sampling,
averaged over seeds), and a difference carries `total_se` = sqrt(seed_se^2 + eval_se^2). Its `eval_se`
is the evaluation's standard error of that difference itself, paired over the same generated noises
and reference images, from the evaluate stage's metrics/differences.json (the pipeline's own
students; the evaluation design, not the seed, sets it); the two generators' errors share those
samples and are positively correlated, so the paired error is smaller than both combined. Without
that file it falls back to sqrt(eval_se_a^2 + eval_se_b^2), which overstates it (`paired_eval_se`
in the summary says which). The summary also keeps each seed's own metrics (`runs`). Its table
(`lines_model.results.compare_table`) gives Lines minus baseline per metric, paired by seed, with
its total standard error, degrees of freedom and p-value (`lines_model.significance`).
It reads the outputs of `dvc repro` (pairs, subset, students). The students of the other seeds
are kept in a folder named by a fingerprint of what determines them (student and training
settings, pairs, subset), so a rerun only evaluates and a changed default trains afresh.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from lines_model import evaluation, pairs, runtime
from lines_model.config import Params, to_dict
from lines_model.methods import registry
from lines_model.methods.base import Layout
from lines_model.hashing import fingerprint
from lines_model.provenance import code_hash
from lines_model.imaging import to_unit

METRICS = ("fid", "kid", "precision", "recall", "mse")


def compared(params: Params) -> tuple[str, ...]:
    """The generators of the seed-compared methods, as the evaluation names them."""
    return tuple(g for m in registry.seed_compared() for g in m.generator_names(params))


def paired(params: Params) -> tuple[tuple[str, str], ...]:
    """The methods' differences between two compared generators (Lines minus the baseline)."""
    names = set(compared(params))
    return tuple((a, b) for a, b in registry.differences(params) if a in names and b in names)


def replicate(params: Params, seed: int, work: Path, *, layout: Layout, device="cpu") -> dict[str, dict[str, float]]:
    """Metrics of the compared generators for students trained with `seed`."""
    methods = registry.seed_compared()
    if all(getattr(params, m.section).seed == seed for m in methods):
        folders = {m.name: layout.model(m.name) for m in methods}
    else:
        p = dataclasses.replace(
            params, **{m.section: dataclasses.replace(getattr(params, m.section), seed=seed) for m in methods}
        )
        run_dir = work / f"seed-{seed}-{replicate_key(p, layout)}"
        folders = {m.name: run_dir / m.name for m in methods}
        for m in methods:
            if not (folders[m.name] / "lines_model.json").exists():
                m.train(
                    p,
                    dataclasses.replace(layout, scratch=work / "scratch"),
                    out=folders[m.name],
                    live=run_dir / f"dvclive-{m.name}",
                )
    e = params.evaluate
    noise, teacher_images, reference = pairs.PairStore(layout.heldout).split(e.count, e.reference)
    gens = [g for m in methods for g in m.generators(params, folders[m.name], device=device)]
    feats = evaluation.Features(e)
    ref_f = feats(to_unit(reference))
    teacher01 = to_unit(teacher_images)
    out = {}
    for g in gens:
        m, _ = evaluation.quality(g, noise, teacher01, ref_f, feats, e.batch_size)
        out[g.name] = {k: m[k] for k in METRICS} | {f"{k}_se": m[f"{k}_se"] for k in METRICS}
    return out


def replicate_key(params: Params, layout: Layout) -> str:
    """What the students of one replicate are a function of: settings, teacher, pairs and subset."""
    methods = registry.seed_compared()
    inputs = [layout.pairs / "manifest.json", layout.subset]
    settings = {
        "teacher": to_dict(params.teacher),
        "student": to_dict(params.student),
        **{m.name: getattr(params, m.section).identity() for m in methods},
        "inputs": [f.read_text() if f.exists() else None for f in inputs],
    }
    # The code that trains them (each method's module and what it runs), not the evaluation's: an
    # edit to how students are scored re-scores the kept students and retrains none.
    code = [
        code_hash(
            Path(sys.modules[m.train.__module__].__file__).resolve(), ("teacher", "student", m.section, "runtime")
        )
        for m in methods
    ]
    return fingerprint({"result": settings, "precision": runtime.mixed_precision(params.runtime), "code": code})


def mean_se(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"seed_mean": float(v.mean()), "seed_se": se}


def summarise(seeds: list[int], runs: list[dict], paired: dict | None = None, differences=()) -> dict:
    """Per generator of the runs and metric: mean and standard error over seeds, and the evaluation's
    own standard error; per difference (a, b) in `differences` also the total standard error.

    `paired` is the evaluate stage's metrics/differences.json ({"a - b": {"fid_se": .., ...}}): the
    evaluation's standard error of each difference, paired over the shared samples. A difference or
    metric it lacks falls back to the two generators' errors combined as if independent."""
    out: dict = {"seeds": seeds}
    for g in runs[0]:
        out[g] = {
            k: mean_se([r[g][k] for r in runs]) | {"eval_se": float(np.mean([r[g][f"{k}_se"] for r in runs]))}
            for k in METRICS
        }
    out["difference"] = {}
    used_paired = []
    for a, b in differences:
        d = {}
        evaluated = (paired or {}).get(f"{a} - {b}", {})
        for k in METRICS:
            m = mean_se([r[a][k] - r[b][k] for r in runs])
            se = evaluated.get(f"{k}_se")
            used_paired.append(se is not None)
            eval_se = float(se) if se is not None else math.hypot(out[a][k]["eval_se"], out[b][k]["eval_se"])
            d[k] = m | {"eval_se": eval_se, "total_se": math.hypot(m["seed_se"], eval_se)}
        out["difference"][f"{a}-{b}"] = d
    out["paired_eval_se"] = all(used_paired)
    # Each seed's own metrics, kept with the summary in git. A list, which `dvc metrics show` leaves
    # out (it shows numbers in nested objects only), so the metrics table stays readable.
    out["runs"] = [{"seed": s} | r for s, r in zip(seeds, runs)]
    return out
