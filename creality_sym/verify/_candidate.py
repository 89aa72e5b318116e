"""A freshly rendered ``generated/`` tree, written to a temporary folder and imported privately.

:func:`candidate_tree` writes ``{relative path: text}`` (what
:func:`creality_sym.generate.render_all` returns) into a ``tempfile.mkdtemp()``
folder and makes it importable as the package ``_creality_candidate_<hex>``;
on leaving, the package and its submodules are removed from ``sys.modules``
and the folder is deleted. The installed ``creality_generated`` is never
touched, so the code that is about to replace it can be checked first.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import secrets
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

#: the installed package's name; modules importing it absolutely are pointed at the candidate.
INSTALLED = "creality_generated"


class ImportFailure(Exception):
    """A candidate module could not be imported; the message says why (file:line)."""


@dataclass
class Candidate:
    """The rendered tree in ``folder``, importable as package ``package``."""

    folder: Path
    package: str
    files: Mapping[str, str]
    _modules: dict[str, ModuleType | ImportFailure] = field(default_factory=dict)

    @property
    def cuda_folder(self) -> Path:
        return self.folder / "cuda"

    def module(self, name: str) -> ModuleType:
        """The candidate's module ``name`` (e.g. a spec name or ``cuda_loader``).

        Raises :class:`ImportFailure` naming the file, line and error.
        """
        if name not in self._modules:
            self._modules[name] = self._import(name)
        found = self._modules[name]
        if isinstance(found, ImportFailure):
            raise found
        return found

    def _import(self, name: str) -> ModuleType | ImportFailure:
        rel = f"{name}.py"
        if rel not in self.files:
            return ImportFailure(f"the rendered tree has no {rel}")
        full = f"{self.package}.{name}"
        try:
            with _installed_alias(self, absolute=f"from {INSTALLED}" in self.files[rel]):
                return importlib.import_module(full)
        except Exception as exc:  # SyntaxError, ImportError, NameError...: any is a failure
            return ImportFailure(_describe(exc, self.folder))


def _describe(exc: BaseException, folder: Path) -> str:
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{_relative(exc.filename, folder)}:{exc.lineno}: "
    else:
        frames = [
            fr
            for fr in traceback.extract_tb(exc.__traceback__)
            if fr.filename.startswith(str(folder))
        ]
        if frames:
            where = f"{_relative(frames[-1].filename, folder)}:{frames[-1].lineno}: "
    text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    return f"{where}{type(exc).__name__}: {text}"


def _relative(path: str, folder: Path) -> str:
    try:
        return "generated/" + Path(path).relative_to(folder).as_posix()
    except ValueError:
        return path


@contextlib.contextmanager
def _installed_alias(cand: Candidate, *, absolute: bool) -> Iterator[None]:
    """While importing a module that imports ``creality_generated...`` absolutely, make those
    names resolve to the candidate's modules (so the candidate's own runtime is checked)."""
    if not absolute:
        yield
        return
    saved = {
        k: v for k, v in sys.modules.items() if k == INSTALLED or k.startswith(INSTALLED + ".")
    }
    for k in saved:
        del sys.modules[k]
    sys.modules[INSTALLED] = sys.modules[cand.package]
    try:
        runtime = importlib.import_module(f"{cand.package}._runtime")
        sys.modules[f"{INSTALLED}._runtime"] = runtime
        yield
    finally:
        for k in [k for k in sys.modules if k == INSTALLED or k.startswith(INSTALLED + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)


@contextlib.contextmanager
def candidate_tree(files: Mapping[str, str]) -> Iterator[Candidate]:
    """Write ``files`` to a temporary folder and import it as a private package."""
    folder = Path(tempfile.mkdtemp(prefix="creality-candidate-"))
    package = f"_creality_candidate_{secrets.token_hex(6)}"
    dont_write = sys.dont_write_bytecode
    try:
        for rel, text in files.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode())
        init = folder / "__init__.py"
        if not init.is_file():
            init.write_text("")
        sys.dont_write_bytecode = True
        spec = importlib.util.spec_from_file_location(
            package, init, submodule_search_locations=[str(folder)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        cand = Candidate(folder, package, dict(files))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            failure = ImportFailure(f"the package __init__ fails: {_describe(exc, folder)}")
            cand._modules = _AllFail(failure)  # type: ignore[assignment]
        yield cand
    finally:
        sys.dont_write_bytecode = dont_write
        for k in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
            del sys.modules[k]
        importlib.invalidate_caches()
        shutil.rmtree(folder, ignore_errors=True)


class _AllFail(dict):  # type: ignore[type-arg]
    """Module table of a package whose ``__init__`` failed: every import fails the same way."""

    def __init__(self, failure: ImportFailure) -> None:
        super().__init__()
        self.failure = failure

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> ImportFailure:
        return self.failure
