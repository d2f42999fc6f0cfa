"""The offline `dvc plots show` page: the template carries the scripts inline and DVC accepts it;
the page check counts what it should."""

from __future__ import annotations

from collections import Counter

import pytest
from dvc_render.html import HTML

from tools import plots_page, plots_template


def fake_node_modules(root, code=None):
    for rel in plots_template.BUNDLES:
        pkg = rel.split("/")[0]
        (root / pkg / "build").mkdir(parents=True)
        (root / pkg / "package.json").write_text(f'{{"name": "{pkg}", "version": "1.2.3"}}')
        (root / rel).write_text(
            (code or f"var {pkg.replace('-', '_')} = 1;") + f"\n//# sourceMappingURL={pkg}.min.js.map\n"
        )
    return root


def test_template_inlines_every_bundle_in_order_and_dvc_fills_it(tmp_path):
    text = plots_template.build(fake_node_modules(tmp_path))
    assert "<script src" not in text and "sourceMappingURL" not in text
    assert text.index("var vega = 1") < text.index("var vega_lite = 1") < text.index("var vega_embed = 1")
    assert "/* vega-embed 1.2.3 */" in text
    page = (
        HTML(text)
        .with_scripts('<script src="https://cdn.example/vega"></script>')
        .with_element("<div id='x'></div>")
        .embed()
    )
    assert "<div id='x'></div>" in page and "cdn.example" not in page  # no {scripts}: DVC's CDN tags go nowhere
    assert "{plot_divs}" not in page and "{refresh_tag}" not in page


def test_template_keeps_the_script_element_whole_and_refuses_dvc_placeholders(tmp_path):
    code = 'var s = "</script><!-- x";'
    text = plots_template.build(fake_node_modules(tmp_path / "a", code))
    assert r'var s = "<\/script><\!-- x";' in text
    with pytest.raises(ValueError, match=r"vega .*\{plot_divs\}"):
        plots_template.build(fake_node_modules(tmp_path / "b", 'var s = "{plot_divs}";'))
    with pytest.raises(FileNotFoundError, match="npm ci"):
        plots_template.build(tmp_path / "empty")


def test_page_check_counts_images_once_and_charts_drawn():
    html = """<div id = "a_tsv"><script>var spec = {}; vegaEmbed('#a_tsv', spec);</script></div>
              <div id = "b_tsv"><script>vegaEmbed("#b_tsv", spec);</script></div>"""
    assert plots_page.chart_ids(html) == ["a_tsv", "b_tsv"]
    expected = ["plots/comparison.png", "plots/samples/teacher.png"]
    good = plots_page.Page(
        images=Counter({"static/workspace_plots_comparison.png": 1, "static/workspace_plots_samples_teacher.png": 1}),
        charts={"a_tsv": 5000, "b_tsv": 12},
    )
    assert plots_page.check(expected, 2, good) == []
    bad = plots_page.Page(
        images=Counter({"static/workspace_plots_comparison.png": 2}),
        charts={"a_tsv": 0},
        images_not_loaded=["static/workspace_plots_comparison.png"],
    )
    problems = plots_page.check(expected, 2, bad)
    assert "plots/comparison.png: 2 <img> on the page, not 1" in problems
    assert "plots/samples/teacher.png: 0 <img> on the page, not 1" in problems
    assert "1 vega charts on the page, 2 in DVC's list" in problems
    assert "vega chart a_tsv: nothing drawn" in problems
    assert "static/workspace_plots_comparison.png: not loaded" in problems
