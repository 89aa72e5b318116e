"""The process settings of the ``creality`` command (creality_sym.process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from creality_sym import process

#: allocates arrays of 800 KB (beyond glibc's default mmap threshold), frees them, and
#: prints the page faults of doing that again five times
_FAULTS = """
import resource, sys
import numpy as np
from creality_sym import process
applied = process.keep_freed_memory() if sys.argv[1] == "keep" else False
def once():
    arrays = [np.ones(100_000) for _ in range(30)]
    del arrays
once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    once()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str, env: dict[str, str]) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_arrays_are_reused_without_page_faults():
    env = {k: v for k, v in os.environ.items() if k not in process.MALLOC_VARIABLES}
    applied, kept = _faults("keep", env)
    if applied != "True":
        pytest.skip("no glibc mallopt here")
    _, fresh = _faults("default", env)
    pages = 5 * 30 * 100_000 * 8 // 4096
    assert fresh > pages // 2  # every array a fresh mapping: a fault per page
    assert kept < pages // 20  # reused from the heap


def test_a_malloc_setting_of_the_caller_is_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert process.keep_freed_memory() is False


def test_the_command_applies_it(monkeypatch):
    from creality_sym import cli

    calls = []
    monkeypatch.setattr(process, "keep_freed_memory", lambda: calls.append(1) or True)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert calls == [1]


def test_the_allocator_setting_is_reported(monkeypatch):
    from creality_sym.bench.table import environment

    for name in process.MALLOC_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(process, "_kept", False)
    assert process.allocator_setting() == "allocator defaults"
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert process.allocator_setting() == "set by the environment (MALLOC_TRIM_THRESHOLD_)"
    monkeypatch.setattr(process, "_kept", True)
    assert process.allocator_setting().startswith("freed memory kept")
    env = environment()
    assert env["allocator"].startswith("freed memory kept")
    assert "openblas_thread_timeout" in env
