"""The HTML template of the `dvc plots show` page with vega, vega-lite and vega-embed inline.

DVC's own page loads the three scripts from a CDN, so offline its vega charts (dvclive's loss and
learning-rate curves) stay blank. This template carries them inline instead and leaves out DVC's
`{scripts}` placeholder (where DVC would put its CDN tags): the page draws every chart, interactive
as before, with or without a network. DVC fills `{plot_divs}` (required) and `{refresh_tag}`.

    python -m tools.plots_template plots_page/node_modules build/plots_page/template.html

reads the bundles npm installed from plots_page/package-lock.json (`make plots-page` does both,
and points DVC at the template with `dvc config --local plots.html_template`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lines_model.atomic import atomic_path

# Loaded in this order: vega-lite and vega-embed find the libraries before them as globals.
BUNDLES = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")
PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")  # dvc_render.html.HTML.embed replaces these

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def inline_script(name: str, code: str) -> str:
    """`code` as an inline <script>, safe inside HTML and inside DVC's placeholder substitution."""
    code = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", code)  # no map next to an inlined copy
    for placeholder in PLACEHOLDERS:
        if placeholder in code:
            raise ValueError(f"{name} contains {placeholder}, which DVC would replace inside the script")
    # "</script" would end the element early and "<!--" would change how the parser reads the rest;
    # in JavaScript "<\/" and "<\!" are the same characters in a string or regular expression.
    code = code.replace("</script", r"<\/script").replace("<!--", r"<\!--")
    return f'    <script type="text/javascript">/* {name} */\n{code}\n    </script>'


def build(node_modules: Path) -> str:
    """The template's text from the npm-installed bundles under `node_modules`."""
    scripts = []
    for rel in BUNDLES:
        path = node_modules / rel
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run `npm ci` in plots_page/ (or `make plots-page`)")
        version = re.search(r'"version":\s*"([^"]+)"', (node_modules / rel.split("/")[0] / "package.json").read_text())
        scripts.append(
            inline_script(
                f"{rel.split('/')[0]} {version.group(1) if version else '?'}", path.read_text(encoding="utf8")
            )
        )
    return PAGE.format(scripts="\n".join(scripts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("node_modules", type=Path, help="npm's install folder (plots_page/node_modules)")
    parser.add_argument("out", type=Path, help="the template to write")
    args = parser.parse_args(argv)
    text = build(args.node_modules)
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(text, encoding="utf8")
    print(f"{args.out}: {len(text) / 1e6:.2f} MB, {', '.join(r.split('/')[0] for r in BUNDLES)} inline")


if __name__ == "__main__":
    main()
