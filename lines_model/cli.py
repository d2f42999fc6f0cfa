"""Shared entry-point plumbing for the stage scripts: params loading and error reporting."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from lines_model.config import Params, load_params
from lines_model.errors import InputError, TrainingDiverged


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the project's commands: a wrong usage is one line, `error: ...`, and exit code 2."""

    def error(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def fail(message: str):
    """End a command on a wrong input: one line and exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def run_stage(main: Callable[[Params], None], description: str) -> None:
    """Parse --params, validate everything, run `main`; expected failures exit 2 (3 for a diverged
    training run) with one clear line and no traceback."""
    p = ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = p.parse_args()
    try:
        main(load_params(args.params))
    except (InputError, FileNotFoundError) as e:
        fail(str(e))
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:
        print("interrupted; rerun the stage to resume", file=sys.stderr)
        sys.exit(130)
    finally:
        sys.stdout.flush()
