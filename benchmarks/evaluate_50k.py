"""The evaluation's metrics and standard errors at CIFAR-10 size, once, on synthetic features.

    python -m benchmarks.evaluate_50k --out JSON [--n 50000] [--d 2048] [--replicates 200]

`uncertainty.metrics_with_errors` (what the evaluation calls) on n generated against n reference
features of d dimensions (benchmarks.uncertainty's shifted, correlated sets), timed, with this
process's peak host memory and peak GPU memory allocated. benchmarks/gpu_pipeline.py runs it as a
child process of its own, so that those peaks are this call's and nothing else's.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def measure(n: int, d: int, replicates: int) -> dict:
    import torch

    from benchmarks.uncertainty import _features
    from lines_model import uncertainty

    g, ref = _features(n, n, d, 0.05)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    metrics, errors = uncertainty.metrics_with_errors(
        g, ref, n_replicates=replicates, kid_subset_size=1000, kid_subsets=100, prc_neighborhood=3
    )
    s = time.perf_counter() - t0
    return dict(
        n=n,
        d=d,
        replicates=replicates,
        s=s,
        metrics=metrics,
        errors=errors,
        peak_host_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # ru_maxrss is in KiB
        peak_gpu_allocated_gb=torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0,
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file of the result")
    ap.add_argument("--n", type=int, default=50_000, help="generated and reference features, each")
    ap.add_argument("--d", type=int, default=2048, help="feature dimension")
    ap.add_argument("--replicates", type=int, default=200, help="half-sample replicates of the standard errors")
    a = ap.parse_args(argv)
    a.out.write_text(json.dumps(measure(a.n, a.d, a.replicates)))


if __name__ == "__main__":
    main()
