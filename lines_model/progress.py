"""Progress bars that read well both in a terminal and in a `dvc repro` log.

In a terminal tqdm redraws in place; written to a file or pipe every redraw is a new line, so
off a TTY a bar refreshes at most every `LOG_INTERVAL_S` seconds (a few hundred lines per hour
instead of one per step).
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

LOG_INTERVAL_S = 10.0


def bar(**kwargs) -> tqdm:
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("maxinterval", LOG_INTERVAL_S * 6)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(**kwargs)
