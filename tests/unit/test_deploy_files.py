"""deploy/ is the one source of the production layout: docs/operations.md shows its files as they
are, every @FIELD@ they hold is one deploy/up.sh fills, and its scripts parse."""

from __future__ import annotations

import pathlib
import re
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TEMPLATES = [DEPLOY / "nginx.conf", DEPLOY / "cheaptokens.env", *sorted(DEPLOY.glob("systemd/*"))]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_the_docs_show_the_file_as_it_is(path):
    docs = (ROOT / "docs" / "operations.md").read_text()
    assert f"`{path.relative_to(ROOT)}`:\n\n```" in docs
    assert path.read_text() in docs


def test_up_fills_every_field():
    up = (DEPLOY / "up.sh").read_text()
    given = set(re.findall(r"\bR_([A-Z][A-Z0-9_]*)=", up))
    wanted = {f for p in TEMPLATES for f in re.findall(r"@([A-Z][A-Z0-9_]*)@", p.read_text())}
    assert wanted == given


@pytest.mark.parametrize("script", sorted(DEPLOY.glob("*.sh")), ids=lambda p: p.name)
def test_the_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
