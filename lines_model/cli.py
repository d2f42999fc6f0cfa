"""Shared entry-point plumbing for the stage scripts: params loading and error reporting."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from lines_model.config import ConfigError, Params, load_params


def run_stage(main: Callable[[Params, argparse.Namespace], None], description: str, add_args=None) -> None:
    """Parse --params, validate everything, run `main`; expected failures exit 2 with one clear line."""
    from lines_model.pairs import PairsError
    from lines_model.teachers import TeacherError
    from lines_model.training import TrainingDiverged

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if add_args:
        add_args(p)
    args = p.parse_args()
    try:
        params = load_params(args.params)
        main(params, args)
    except (ConfigError, PairsError, TeacherError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("interrupted; rerun the stage to resume", file=sys.stderr)
        sys.exit(130)
    finally:
        sys.stdout.flush()
