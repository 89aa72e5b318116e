"""write_tree: a complete folder at every moment, under kills, concurrency and slow renames."""

from __future__ import annotations

import inspect
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from creality_sym import atomic
from creality_sym.atomic import TreeBusyError, lock_path, recover, tree_lock, write_tree

ROOT = Path(__file__).resolve().parents[1]
STRACE = shutil.which("strace")
SLOW_RENAMES = "inject=rename,renameat,renameat2:delay_enter=200000"


def version(k: int) -> dict[str, str]:
    """A tree whose file set and contents both depend on ``k``."""
    return {
        "manifest.json": json.dumps({"version": k}) + "\n",
        "pkg/module.py": f"VERSION = {k}\n",
        f"only_in_{k}.txt": "x" * (k + 1),
    }


def is_some_version(tree: dict[str, str]) -> bool:
    k = json.loads(tree.get("manifest.json", "null") or "null")
    return isinstance(k, dict) and tree == version(k["version"])


def read_tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f"{target.name}."))


def strace_works() -> bool:
    if STRACE is None:
        return False
    proc = subprocess.run([STRACE, "-f", "-o", os.devnull, "true"], capture_output=True)
    return proc.returncode == 0


needs_strace = pytest.mark.skipif(not strace_works(), reason="strace missing or not permitted")


class Poller:
    """Checks from a thread, as fast as it can, that ``path`` exists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checks = 0
        self.missing = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.checks += 1
            if not self.path.exists():
                self.missing += 1
            time.sleep(0.0002)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- plain behaviour


def test_replaces_with_exactly_the_files(tmp_path: Path) -> None:
    target = tmp_path / "generated"
    write_tree(version(1), target)
    assert read_tree(target) == version(1)
    write_tree(version(2), target)
    assert read_tree(target) == version(2)  # only_in_1.txt is gone
    assert leftovers(target) == []
    assert lock_path(target).is_file() and lock_path(target).name == ".generated.lock"


def test_exchange_is_used_on_linux(tmp_path: Path) -> None:
    if atomic._RENAMEAT2 is None:
        pytest.skip("no renameat2 here")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "in_a").write_text("")
    assert atomic.exchange(a, b)
    assert (b / "in_a").is_file() and not (a / "in_a").exists()


def test_the_two_rename_fallback_gives_the_same_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    target = tmp_path / "generated"
    write_tree(version(1), target)
    write_tree(version(2), target)
    assert read_tree(target) == version(2) and leftovers(target) == []


def test_a_file_in_the_way_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "generated"
    target.write_text("not a folder")
    with pytest.raises(atomic.TreeWriteError, match="not a folder"):
        write_tree(version(1), target)
    assert target.read_text() == "not a folder" and leftovers(target) == []


def test_unwritable_parent_is_a_tree_write_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("file permissions do not bind root")
    parent = tmp_path / "ro"
    parent.mkdir()
    write_tree(version(1), parent / "generated")
    parent.chmod(0o500)
    try:
        with pytest.raises(atomic.TreeWriteError, match="cannot"):
            write_tree(version(2), parent / "generated")
    finally:
        parent.chmod(0o700)
    assert read_tree(parent / "generated") == version(1)


# ---------------------------------------------------------------- leftovers of interrupted runs


def test_a_kill_between_the_two_renames_is_recovered(tmp_path: Path) -> None:
    """The fallback's window: no target, a complete .old-*, a staging folder."""
    target = tmp_path / "generated"
    write_tree(version(1), target)
    os.rename(target, tmp_path / "generated.old-999-dead")
    partial = tmp_path / "generated.tmp-999-dead"
    partial.mkdir()
    (partial / "manifest.json").write_text("half")
    assert recover(target) == [
        "restored " + str(target) + " from generated.old-999-dead",
        "removed generated.tmp-999-dead",
    ]
    assert read_tree(target) == version(1)
    assert leftovers(target) == []


def test_stale_leftovers_are_cleaned_by_the_next_run(tmp_path: Path) -> None:
    target = tmp_path / "generated"
    write_tree(version(1), target)
    for name in ("generated.tmp-1", "generated.old-2", "generated.tmp-3-abc"):
        (tmp_path / name / "sub").mkdir(parents=True)
    write_tree(version(2), target)
    assert read_tree(target) == version(2) and leftovers(target) == []


WRITER = (
    "import json\n"
    + inspect.getsource(version)
    + """
import sys
from pathlib import Path
from creality_sym import atomic
if sys.argv[2] == "fallback":
    atomic.exchange = lambda a, b: False
target = Path(sys.argv[1])
for k in range(int(sys.argv[3]), int(sys.argv[4])):
    atomic.write_tree(version(k), target)
"""
)


def _writer(target: Path, mode: str, first: int, last: int) -> list[str]:
    return [sys.executable, "-c", WRITER, str(target), mode, str(first), str(last)]


def test_sigkill_at_random_moments_never_leaves_an_incomplete_tree(tmp_path: Path) -> None:
    if atomic._RENAMEAT2 is None:
        pytest.skip("without renameat2 a kill can leave the target missing until the next run")
    target = tmp_path / "generated"
    write_tree(version(0), target)
    for i in range(8):
        proc = subprocess.Popen(_writer(target, "exchange", 1, 100_000), cwd=ROOT)
        time.sleep(0.4 + 0.05 * i)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert (target / "manifest.json").is_file(), f"kill {i}"
        assert is_some_version(read_tree(target)), f"kill {i}: mixed tree"
    write_tree(version(7), target)
    assert read_tree(target) == version(7) and leftovers(target) == []


# ---------------------------------------------------------------- the lock


def test_a_second_writer_waits_with_a_message(tmp_path: Path) -> None:
    target = tmp_path / "generated"
    write_tree(version(1), target)
    said = io.StringIO()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            write_tree(version(2), target, lock_timeout=20, stream=said)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with tree_lock(target):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        assert read_tree(target) == version(1)  # still waiting
    thread.join(20)
    assert not errors and read_tree(target) == version(2)
    assert "waiting for another run" in said.getvalue()
    assert f"pid {os.getpid()}" in said.getvalue()


def test_a_writer_gives_up_after_the_timeout_with_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "generated"
    write_tree(version(1), target)
    with tree_lock(target):
        with pytest.raises(TreeBusyError, match=r"another run \(pid \d+\).*gave up after"):
            write_tree(version(2), target, lock_timeout=0.3, stream=io.StringIO())
    assert read_tree(target) == version(1) and leftovers(target) == []


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    target = tmp_path / "generated"
    write_tree(version(0), target)
    with Poller(target / "manifest.json") as poll:
        procs = [
            subprocess.Popen(
                _writer(target, "exchange", 10 * j + 1, 10 * j + 8),
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for j in range(4)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0 and "Traceback" not in err, err
    assert poll.missing == 0 and poll.checks > 10
    final = read_tree(target)
    assert final in [version(k) for k in range(1, 40)] and leftovers(target) == []


# ---------------------------------------------------------------- slow renames (strace)


def _run_slowed(cmd: list[str], poll_path: Path, cwd: Path) -> tuple[Poller, str]:
    assert STRACE is not None
    log = poll_path.parent.parent / "strace.log"  # beside the tree, never in the checkout
    full = [STRACE, "-f", "-qq", "-o", str(log), "-e", "trace=rename,renameat,renameat2"]
    full += ["-e", SLOW_RENAMES, *cmd]
    with Poller(poll_path) as poll:
        proc = subprocess.run(full, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return poll, log.read_text()


@needs_strace
def test_slowed_renames_never_hide_the_tree(tmp_path: Path) -> None:
    target = tmp_path / "generated"
    write_tree(version(0), target)
    poll, log = _run_slowed(_writer(target, "exchange", 1, 6), target / "manifest.json", ROOT)
    assert "renameat2" in log and "RENAME_EXCHANGE" in log
    assert poll.missing == 0 and poll.checks > 100
    assert read_tree(target) == version(5)


@needs_strace
def test_the_poller_sees_the_gap_of_the_two_rename_fallback(tmp_path: Path) -> None:
    """The check has teeth: with two renames, each slowed by 0.2 s, the tree goes missing."""
    target = tmp_path / "generated"
    write_tree(version(0), target)
    poll, _ = _run_slowed(_writer(target, "fallback", 1, 4), target / "manifest.json", ROOT)
    assert poll.missing > 0
    assert read_tree(target) == version(3)


@needs_strace
def test_creality_derive_with_slowed_renames_keeps_a_manifest(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    for folder in ("derivations", "generated"):
        shutil.copytree(
            ROOT / folder, scratch / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    (scratch / "generated" / "DERIVATIONS.md").unlink()  # so the run must write a new tree
    (scratch / "generated" / "stale-marker.txt").write_text("old tree")
    script = textwrap.dedent(
        """
        import sys
        from creality_sym.cli import main
        sys.exit(main(["derive", "--root", sys.argv[1], "--no-verify"]))
        """
    )
    cmd = [sys.executable, "-c", script, str(scratch)]
    poll, log = _run_slowed(cmd, scratch / "generated" / "manifest.json", tmp_path)
    assert poll.missing == 0 and poll.checks > 100
    assert "RENAME_EXCHANGE" in log
    assert (scratch / "generated" / "DERIVATIONS.md").is_file()
    assert not (scratch / "generated" / "stale-marker.txt").exists()
    assert leftovers(scratch / "generated") == []
