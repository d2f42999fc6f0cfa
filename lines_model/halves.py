"""How small the sets behind a standard error may be: the one statement of the rule, which the params
check (config/evaluate.py) and the errors themselves (uncertainty.py) both call.

Every *_se comes from complementary half-samples of the generated set (n items) and the reference
(m items): at least two pairs of halves, and precision/recall's k nearest neighbours must exist
within a half.
"""

from __future__ import annotations

MIN_REPLICATES = 4  # two pairs of complementary halves


class SizeError(ValueError):
    """A set size rule broken by argument `arg` (the caller names it as its user knows it)."""

    def __init__(self, arg: str, reason: str):
        super().__init__(f"{arg}: {reason}")
        self.arg, self.reason = arg, reason


def check(n: int, m: int, replicates: int, prc_neighborhood: int) -> None:
    if replicates < MIN_REPLICATES:
        raise SizeError(
            "replicates",
            f"need at least 2 pairs of complementary halves ({MIN_REPLICATES} replicates), got {replicates}",
        )
    h = min(n, m) // 2
    if not 1 <= prc_neighborhood < h:
        raise SizeError(
            "prc_neighborhood",
            f"the errors use halves of {h} items (half of the smaller of {n} generated and "
            f"{m} reference items), so it must lie in [1, {h - 1}], got {prc_neighborhood}",
        )
