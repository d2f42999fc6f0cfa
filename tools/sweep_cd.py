"""A short sweep of consistency distillation's budget on a finished pipeline's pairs and Lines student.

    python -m tools.sweep_cd --root . -S cd.iterations=300 -S cd.lr=1e-4 [-S ...] --out scratch/sweep-cd

(from the repository root). Trains the cd.init models with params.yaml's values and the -S overrides
into --out, then scores every CD generator of evaluate.cd_steps as the evaluate stage does (FID, KID,
precision, recall with their standard errors, against the held-out reference) and prints one line per
generator with the training time. Offline tooling: no stage runs it; docs/sweep.md records its runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from lines_model import evaluation, pairs, runtime
from lines_model.cli import ArgumentParser
from lines_model.config import parse_params
from lines_model.imaging import to_unit
from lines_model.methods import cd
from lines_model.methods.base import Layout
from lines_model.profile import merge


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m tools.sweep_cd", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("."), help="the repository whose data/ and models/lines are used")
    p.add_argument(
        "-S", dest="sets", action="append", default=[], help="key=value override of params.yaml (YAML value)"
    )
    p.add_argument("--out", type=Path, required=True, help="where the models are written (replaced)")
    args = p.parse_args(argv)
    data = yaml.safe_load(Path("params.yaml").read_text())
    for s in args.sets:
        key, value = s.split("=", 1)
        diff: dict = {}
        node = diff
        *parents, leaf = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
        data = merge(data, diff)
    params = parse_params(data)
    runtime.set_threads(params.runtime)
    layout = Layout(args.root, scratch=args.out / "scratch")
    t0 = time.perf_counter()
    cd.METHOD.train(params, layout, out=args.out / "models", live=args.out / "live")
    train_s = time.perf_counter() - t0
    e = params.evaluate
    noise, teacher_images, reference = pairs.PairStore(layout.heldout).split(e.count, e.reference)
    feats = evaluation.Features(e)
    ref_f, teacher01 = feats(to_unit(reference)), to_unit(teacher_images)
    settings = " ".join(args.sets)
    for g in cd.generators(params, args.out / "models", device=runtime.state().device):
        m, _ = evaluation.quality(g, noise, teacher01, ref_f, feats, e.batch_size)
        print(
            f"{settings} | {g.name} | FID {m['fid']:.2f} ± {m['fid_se']:.2f} | KID {m['kid']:.4f} ± "
            f"{m['kid_se']:.4f} | "
            f"precision {m['precision']:.3f} | recall {m['recall']:.3f} | MSE {m['mse']:.4f} | train {train_s:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
