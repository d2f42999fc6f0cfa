"""Every command's wrong usages end in one line naming the argument or file, exit code 2, no traceback;
every command's --help describes each of its arguments. (In process: a command is its main(argv).)"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

WRONG = [
    ("lines_model.profile", ["{tmp}/missing.yaml", "-o", "{tmp}/p.yaml"], "error: {tmp}/missing.yaml: no such file"),
    ("lines_model.profile", ["{tmp}/broken.yaml", "-o", "{tmp}/p.yaml"], "error: {tmp}/broken.yaml: not valid YAML"),
    ("lines_model.profile", ["{tmp}/list.yaml", "-o", "{tmp}/p.yaml"], "error: {tmp}/list.yaml: holds a list"),
    (
        "lines_model.profile",
        ["{tmp}/typo.yaml", "-o", "{tmp}/p.yaml"],
        "error: {tmp}/typo.yaml: pairs.cout: unknown key",
    ),
    ("lines_model.profile", [], "error: the following arguments are required: profile, -o/--out"),
    ("lines_model.results", ["-i", "{tmp}/missing.json"], "error: {tmp}/missing.json: missing"),
    ("lines_model.__main__", ["smaple"], "error: unknown command 'smaple'"),
    ("tools.stage_deps", ["--wirte"], "error: unrecognized arguments: --wirte"),
    ("tools.random_teacher", [], "error: the following arguments are required: -o/--out"),
    ("stages.compare", ["--seeds", "1"], "error: --seeds: at least two distinct seeds"),
]


@pytest.mark.parametrize("module, argv, message", WRONG, ids=[f"{w[0]} {i}" for i, w in enumerate(WRONG)])
def test_a_wrong_usage_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, module, argv, message):
    (tmp_path / "broken.yaml").write_text("pairs: [1\n")
    (tmp_path / "list.yaml").write_text("- 1\n")
    (tmp_path / "typo.yaml").write_text("pairs: {cout: 3}\n")
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(message.replace("{tmp}", str(tmp_path))), err


@pytest.mark.parametrize(
    "module",
    [
        "lines_model.profile",
        "lines_model.sample",
        "lines_model.results",
        "tools.stage_deps",
        "stages.compare",
        "tools.random_teacher",
    ],
)
def test_help_describes_every_argument(module, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: an argument's help starts on its own line
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(["--help"])
    assert e.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    entries = [i for i, line in enumerate(lines) if re.match(r"^  \S", line)]
    assert entries
    for i in entries:
        # the help follows the argument on its line, or (a long argument) on the next, indented further
        has_help = re.search(r"\S  +\S", lines[i].strip()) or (
            i + 1 < len(lines) and re.match(r"^ {6,}\S", lines[i + 1])
        )
        assert has_help, f"{module}: no help for {lines[i].strip()!r}"


def test_piping_the_deps_listing_into_head_ends_quietly():
    r = subprocess.run(
        f"{sys.executable} -m tools.stage_deps | head -1",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert r.returncode == 0 and r.stdout.startswith("teacher_pairs") and "Traceback" not in r.stderr, r.stderr


def test_prefetch_offline_is_one_line(tmp_path, monkeypatch, capsys):
    import tools.prefetch as prefetch

    def offline(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(prefetch, "download_teacher", offline)
    with pytest.raises(SystemExit) as e:
        prefetch.main(["--teacher", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(
        f"error: {tmp_path / 't'}: could not fetch it (OSError: [Errno -2] Name or service not known)"
    )
