"""Section 5: the fidelity metrics and their standard errors at CIFAR-10 size.

n = m = 50,000 synthetic 2,048-d features (the size of Inception features of 50,000 generated
images against CIFAR-10 train). Each call runs in a fresh child process (`run.py --child
uncertainty --phase ...`), so that its peak RSS is its own: `fidelity.metrics_from_features`
(torch-fidelity), `uncertainty.replicates` (the work of `uncertainty.standard_errors`, which also
gives the errors from fewer replicates) and `uncertainty.metrics_with_errors` (what the evaluation
calls), one after the other.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import log, reset_peak_rss, run_child, vm_hwm_mb

FEWER_REPLICATES = (25, 50, 100)  # besides all of them: errors from the first B, and across disjoint batches of B
PHASES = ("metrics", "se", "both")


def _features(n: int, m: int, d: int, shift: float):
    """Reference N(0, C), generated N(shift, C) with one C of decaying spectrum (eigenvalues 1 ... 0.01
    on a random basis), both float32 like extracted features: a shifted, correlated set."""
    import torch

    gen = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    scale = (basis * torch.logspace(0, -1, d, dtype=torch.float64)).T.float()  # C = basis diag(s^2) basis^T
    ref = torch.randn(m, d, generator=gen) @ scale
    g = torch.randn(n, d, generator=gen) @ scale + shift
    return g, ref


def _spread(rep, b: int) -> dict[str, float]:
    """Relative spread (std / mean) of each error over the disjoint batches of b replicates."""
    import numpy as np

    batches = [rep.errors(b, first) for first in range(0, len(rep.fid) - b + 1, b)]
    return {k: float(np.std([e[k] for e in batches], ddof=1) / np.mean([e[k] for e in batches])) for k in batches[0]}


def child_uncertainty(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    for name in ("--n", "--m", "--d", "--replicates", "--threads"):
        p.add_argument(name, type=int, required=True)
    p.add_argument("--shift", type=float, required=True)
    p.add_argument("--phase", choices=PHASES, required=True)
    p.add_argument("--result", required=True)
    a = p.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from lines_model import fid_halves, fidelity, uncertainty

    g, r = _features(a.n, a.m, a.d, a.shift)
    kw = dict(kid_subset_size=1000, kid_subsets=100, prc_neighborhood=3)  # profiles/cifar10.yaml's
    reset_peak_rss()  # the peak of the call alone (the features and the interpreter included)
    t0 = time.perf_counter()
    if a.phase == "metrics":
        out = {"metrics": fidelity.metrics_from_features(g, r, **kw)}
    elif a.phase == "se":
        rep, _ = uncertainty.replicates(g, r, n_replicates=a.replicates, **kw)
        out = {
            "errors": rep.errors(),
            "parts_s": rep.seconds,
            "errors_by_replicates": {b: rep.errors(b) for b in (*FEWER_REPLICATES, a.replicates) if b <= a.replicates},
            "spread_by_replicates": {b: _spread(rep, b) for b in FEWER_REPLICATES if 2 * b <= a.replicates},
        }
    else:
        metrics, errors = uncertainty.metrics_with_errors(g, r, n_replicates=a.replicates, **kw)
        out = {"metrics": metrics, "errors": errors}
    out.update(
        s=time.perf_counter() - t0,
        peak_rss_gb=vm_hwm_mb() / 1024,
        threads=torch.get_num_threads(),
        fid_groups=fid_halves.n_groups(a.n, a.d),
    )
    Path(a.result).write_text(json.dumps(out))


CHILDREN = {"uncertainty": child_uncertainty}


def bench_uncertainty(work: Path, S: dict, threads: int, r: dict, save=lambda: None) -> dict:
    """Section 5: fills `r`, the `uncertainty` entry of the results (benchmarks/README.md), calling
    `save()` after each call measured."""
    n, m, d, b = S["unc_n"], S["unc_m"], S["unc_d"], S["unc_replicates"]
    r.update({"n": n, "m": m, "d": d, "replicates": b, "shift": S["unc_shift"]})
    c = {}
    for phase in PHASES:
        log(f"uncertainty: {phase} of {n:,} vs {m:,} features of {d} dimensions, {b} replicates (child)")
        c[phase] = run_child(
            [
                "uncertainty",
                "--phase",
                phase,
                "--n",
                str(n),
                "--m",
                str(m),
                "--d",
                str(d),
                "--replicates",
                str(b),
                "--threads",
                str(threads),
                "--shift",
                str(S["unc_shift"]),
            ],
            work / f"uncertainty-{phase}.json",
            timeout_s=S["unc_timeout_s"],
        )
        name = {"metrics": "metrics", "se": "se", "both": "metrics_with_errors"}[phase]
        r[f"{name}_s"], r[f"{name}_peak_rss_gb"] = c[phase]["s"], c[phase]["peak_rss_gb"]
        log(f"uncertainty: {phase} {c[phase]['s']:.0f} s, peak RSS {c[phase]['peak_rss_gb']:.2f} GB")
        save()
    se = c["se"]
    r.update(
        {
            "threads": se["threads"],
            "fid_groups": se["fid_groups"],
            "se_over_metrics": r["se_s"] / r["metrics_s"],
            "se_parts_s": se["parts_s"],
            "metrics": c["metrics"]["metrics"],
            "errors": se["errors"],
            "metrics_with_errors_equal": c["both"]["metrics"] == c["metrics"]["metrics"]
            and c["both"]["errors"] == se["errors"],
            "errors_by_replicates": se["errors_by_replicates"],
            "spread_by_replicates": se["spread_by_replicates"],
        }
    )
    save()
    return r
