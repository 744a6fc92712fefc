"""Runs the C++ core unit tests (ctest, cpp/tests) from pytest when the build tree exists."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lammps_helpers import ROOT

BUILD = ROOT / "build"


@pytest.mark.skipif(not (BUILD / "CTestTestfile.cmake").exists(),
                    reason="C++ build tree missing: run scripts/build_plugin.sh")
def test_ctest_core():
    ctest = shutil.which("ctest")
    if ctest is None:
        pytest.skip("ctest not found")
    p = subprocess.run([ctest, "--output-on-failure"], cwd=BUILD, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
