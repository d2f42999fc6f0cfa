"""What a published tool carries: its licence, its citation record and its version, which agree."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import yaml

from conftest import ROOT

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_version_is_the_projects():
    r = subprocess.run([sys.executable, "-m", "lines_model", "--version"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == f"lines_model {VERSION}\n" and r.stderr == "", r.stderr


def test_the_licence_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 The lines_model authors\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_the_citation_record_names_this_version():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # The keys CFF 1.2.0 requires, and the ones that must agree with the project.
    assert cff["cff-version"] == "1.2.0" and cff["message"] and cff["authors"]
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    assert cff["title"] == "lines_model" and cff["type"] == "software"
    assert str(cff["version"]) == VERSION  # a new release bumps both
    assert cff["license"] == "MIT"
