"""The README's generated blocks: the results tables and findings, rendered from metrics/ by lines_model.results.

    python -m tools.readme            # rewrite the blocks of README.md from metrics/ (`make readme`)
    python -m tools.readme --check    # exit 1, naming the blocks, where README.md differs from metrics/

A block sits between `<!-- generated: NAME -->` and `<!-- /generated: NAME -->`, and only what lies
between them is rewritten, so the prose around it stays hand-written. tests/test_results.py fails
when a block differs from what the metric files give, so a number in them cannot drift from its file.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lines_model.cli import ArgumentParser
from lines_model.results import compare_table, findings, load, load_compare, load_differences, table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def blocks(metrics: Path = ROOT / "metrics") -> dict[str, str]:
    """Each generated block's text, from the metric files in `metrics`."""
    evaluate, differences = load(metrics / "evaluate.json"), load_differences(metrics / "differences.json")
    compare = load_compare(metrics / "compare.json")
    return {
        "results-table": table(evaluate),
        "compare-table": compare_table(compare),
        "findings": findings(evaluate, differences, compare),
    }


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated: {re.escape(name)} -->\n)(.*?)(<!-- /generated: {re.escape(name)} -->)", re.S)


def fill(text: str, generated: dict[str, str]) -> str:
    """`text` with every block replaced by its generated text; a block missing from `text` is an error."""
    for name, body in generated.items():
        pattern = _pattern(name)
        if not pattern.search(text):
            raise ValueError(
                f"README.md has no block '{name}' (<!-- generated: {name} --> ... <!-- /generated: {name} -->)"
            )
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text, count=1)
    return text


def stale(text: str, generated: dict[str, str]) -> list[str]:
    """The names of the blocks whose text differs from the generated one."""
    return [
        name
        for name, body in generated.items()
        if (m := _pattern(name).search(text)) is None or m.group(2) != body + "\n"
    ]


def main(argv=None) -> None:
    p = ArgumentParser(prog="python -m tools.readme", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only say which blocks differ from metrics/ (exit 1 if any)")
    args = p.parse_args(argv)
    text, generated = README.read_text(), blocks()
    if args.check:
        if names := stale(text, generated):
            print(
                f"README.md: generated blocks differ from metrics/: {', '.join(names)}; run `make readme`",
                file=sys.stderr,
            )
            sys.exit(1)
        return
    README.write_text(fill(text, generated))
    print("README.md: generated blocks rewritten from metrics/")


if __name__ == "__main__":
    main()
