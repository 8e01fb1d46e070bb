"""The installed package: what users get from a regular install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mephisto_quals


def test_tests_run_against_the_installed_package_not_the_source_tree() -> None:
    assert "site-packages" in mephisto_quals.__file__
    installed = Path(mephisto_quals.__file__).parent
    assert (installed / "py.typed").exists()
    assert (installed / "conf" / "quals" / "mturk_masters.yaml").exists()
    plugin = installed.parent / "hydra_plugins" / "mephisto_quals" / "mephisto_quals_searchpath.py"
    assert plugin.exists(), "the Hydra plugin must sit beside Mephisto's in site-packages/hydra_plugins"


def test_every_source_module_is_installed() -> None:
    """pyproject lists packages explicitly: a new folder left out would be missing from installs."""
    source = Path(__file__).resolve().parents[1] / "mephisto_quals"
    installed = Path(mephisto_quals.__file__).parent
    wanted = {p.relative_to(source) for p in source.rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(str(p) for p in wanted if not (installed / p).exists())
    assert missing == []


def test_every_public_name_resolves() -> None:
    missing = [name for name in mephisto_quals.__all__ if getattr(mephisto_quals, name, None) is None]
    assert missing == []


@pytest.mark.subprocess
def test_importing_the_package_does_not_import_mephisto(tmp_path: Path) -> None:
    code = "import sys, mephisto_quals; print('mephisto' in sys.modules)"
    env = {**os.environ, "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-I", "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    assert not (tmp_path / ".mephisto").exists()
