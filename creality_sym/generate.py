"""Write ``generated/`` from ``derivations/``: deterministic and atomic.

Everything is rendered into a sibling temporary folder first; only when every
spec loaded, derived and rendered is the old folder swapped out, so a failed
run leaves ``generated/`` exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from creality_sym.codegen import cuda as cuda_backend
from creality_sym.codegen import numpy as numpy_backend
from creality_sym.codegen.common import GENERATOR_VERSION
from creality_sym.derive import Derivation, derive
from creality_sym.latex import derivations_markdown
from creality_sym.spec import Spec, SpecError, discover_specs, load_spec

MANIFEST = "manifest.json"


@dataclass
class Layout:
    """Where a project keeps its specs and its generated code.

    By default ``root/derivations`` and ``root/generated``; either can be
    given explicitly (e.g. the installed packages).
    """

    root: Path
    derivations: Path | None = None
    generated: Path | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.derivations = Path(self.derivations or self.root / "derivations").resolve()
        self.generated = Path(self.generated or self.root / "generated").resolve()

    def spec_files(self) -> list[Path]:
        if not self.derivations.is_dir():
            raise SpecError(f"no derivations/ folder under {self.root}")
        files = discover_specs(self.derivations)
        if not files:
            raise SpecError(f"no spec files (defining SPEC = Spec(...)) in {self.derivations}")
        return files


def load_each(layout: Layout, names: list[str] | None = None) -> tuple[list[Spec], list[SpecError]]:
    """Load every spec (or the named ones): the loaded specs and the errors of the others.

    Each error names its file and line; an unknown name is an error too.
    """
    files = layout.spec_files()
    by_name = {p.stem: p for p in files}
    errors: list[SpecError] = []
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            errors.append(
                SpecError(
                    f"unknown spec(s) {unknown}; available: {sorted(by_name)} "
                    f"in {layout.derivations}"
                )
            )
        files = [by_name[n] for n in names if n in by_name]
    specs: list[Spec] = []
    for path in files:
        try:
            specs.append(load_spec(path))
        except SpecError as exc:
            errors.append(exc)
    return specs, errors


def load_all(layout: Layout, names: list[str] | None = None) -> list[Spec]:
    """Load every spec (or the named ones), raising SpecError with file:line.

    Every failing spec is named, one ``file:line: ...`` per line of the message.
    """
    specs, errors = load_each(layout, names)
    if errors:
        raise SpecError("\n".join(str(e) for e in errors))
    return specs


def syntax_errors(layout: Layout) -> list[str]:
    """``file:line: syntax error: ...`` for every spec file that does not compile.

    The files are compiled, not executed.
    """
    out = []
    for path in layout.spec_files():
        data = path.read_bytes()
        try:
            compile(data, str(path), "exec", dont_inherit=True)
        except SyntaxError as exc:
            out.append(f"{path}:{exc.lineno}: syntax error: {exc.msg}")
        except ValueError as exc:  # e.g. null bytes
            out.append(f"{path}:1: syntax error: {exc}")
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: the verification status of a spec written without verification (``--no-verify``).
UNVERIFIED = "unverified"
#: generated files whose text a spec's recorded verification depends on, besides its own.
SHARED_FILES = ("_runtime.py",)


def spec_files_of(name: str) -> tuple[str, ...]:
    """The generated files of spec ``name`` (relative paths) that its verification covers."""
    return (f"{name}.py", f"cuda/{name}.cu", f"cuda/{name}.json", *SHARED_FILES)


def render_all(
    derivations: list[Derivation],
    layout: Layout,
    verification: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """Every generated file, ``{relative path: text}``, in a deterministic order.

    ``verification`` maps spec names to what the manifest records about them:
    ``{method: verdict}`` of the verification that ran, or ``"unverified"``
    (the default for every spec not named).
    """
    files: dict[str, str] = {}
    for d in derivations:
        spec_file = f"derivations/{Path(d.spec.path).name}"
        files.update(numpy_backend.render(d, spec_file=spec_file))
        files.update(cuda_backend.render(d, spec_file=spec_file))
    files.update(numpy_backend.render_runtime([d.spec.name for d in derivations]))
    files.update(cuda_backend.render_runtime([d.spec.name for d in derivations]))
    recorded = verification or {}
    status = {d.spec.name: verification_summary(recorded.get(d.spec.name)) for d in derivations}
    files["DERIVATIONS.md"] = derivations_markdown(derivations, status)
    files[MANIFEST] = manifest_text(derivations, files, verification)
    return dict(sorted(files.items()))


def manifest_text(
    derivations: list[Derivation],
    files: Mapping[str, str],
    verification: Mapping[str, object] | None = None,
) -> str:
    """The manifest: generator, per spec its source, hash and verification, every file's hash."""
    verification = verification or {}
    manifest = {
        "generator": f"creality_sym {GENERATOR_VERSION}",
        "specs": {
            d.spec.name: {
                "source": f"derivations/{Path(d.spec.path).name}",
                "sha256": d.spec.digest,
                "verification": _status(verification.get(d.spec.name)),
            }
            for d in derivations
        },
        "files": {
            path: _sha256(text.encode()) for path, text in sorted(files.items()) if path != MANIFEST
        },
    }
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def _status(value: object) -> object:
    if isinstance(value, Mapping) and value:
        return {str(k): str(v) for k, v in value.items()}
    return UNVERIFIED


def verification_summary(status: object) -> str:
    """One line for people (e.g. DERIVATIONS.md) about a recorded verification status.

    ``{"symbolic": "pass", ...}`` gives ``"verified: symbolic pass, numeric pass, ..."``;
    anything else ``"unverified (written with creality derive --no-verify)"``.
    """
    status = _status(status)
    if not isinstance(status, dict):
        return "unverified (written with creality derive --no-verify)"
    order = ("symbolic", "numeric", "statements", "generated", "generated-c")
    methods = sorted(status, key=lambda m: (order.index(m) if m in order else len(order), m))
    failed = [m for m in methods if status[m] == "FAIL"]
    head = "verification FAILED" if failed else "verified"
    return f"{head}: " + ", ".join(f"{m} {status[m]}" for m in methods)


def read_manifest(layout: Layout) -> dict[str, object]:
    """The manifest of ``generated/`` (``{}`` when missing or unreadable)."""
    path = layout.generated / MANIFEST
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def previous_verification(
    layout: Layout, derivations: list[Derivation], files: Mapping[str, str]
) -> dict[str, object]:
    """Recorded verification statuses still valid for a new rendering ``files``.

    A spec keeps its status when its file's hash and the text of its generated
    files (:func:`spec_files_of`) are unchanged since the status was recorded.
    """
    old = read_manifest(layout)
    specs = old.get("specs", {}) if isinstance(old.get("specs"), dict) else {}
    hashes = old.get("files", {}) if isinstance(old.get("files"), dict) else {}
    out: dict[str, object] = {}
    for d in derivations:
        entry = specs.get(d.spec.name)
        if not isinstance(entry, dict) or entry.get("sha256") != d.spec.digest:
            continue
        same = all(
            hashes.get(rel) == (_sha256(files[rel].encode()) if rel in files else None)
            for rel in spec_files_of(d.spec.name)
        )
        if same and isinstance(entry.get("verification"), dict):
            out[d.spec.name] = entry["verification"]
    return out


def verification_problems(layout: Layout) -> list[str]:
    """Specs whose generated code was written without a (passing) verification."""
    manifest = read_manifest(layout)
    specs = manifest.get("specs", {})
    if not isinstance(specs, dict):
        return []
    problems = []
    for name, entry in sorted(specs.items()):
        status = entry.get("verification") if isinstance(entry, dict) else None
        if not isinstance(status, dict):
            problems.append(
                f"spec {name} was written unverified (`creality derive --no-verify` or an older "
                f"generator): run `creality derive {name}` to verify it"
            )
            continue
        failed = sorted(m for m, v in status.items() if v == "FAIL")
        if failed:
            problems.append(
                f"spec {name} was written although {', '.join(failed)} verification failed"
            )
    return problems


def write_tree(files: dict[str, str], target: Path) -> None:
    """Atomically replace ``target`` with exactly ``files`` (see :mod:`creality_sym.atomic`)."""
    from creality_sym.atomic import write_tree as atomic_write_tree

    atomic_write_tree(files, Path(target))


def derive_all(layout: Layout) -> list[Derivation]:
    """Load and derive every spec of the project."""
    return [derive(spec) for spec in load_all(layout)]


def stale_report(layout: Layout) -> list[str]:
    """Reasons ``generated/`` is out of sync with ``derivations/`` (empty when in sync).

    Spec files are hashed as bytes. When every hash matches, every spec is
    derived again and the tree re-rendered (with the recorded verification
    statuses) and compared byte for byte.
    """
    problems: list[str] = []
    manifest_path = layout.generated / MANIFEST
    if not manifest_path.is_file():
        return [f"{manifest_path} is missing: run `creality derive`"]
    manifest = read_manifest(layout)
    recorded = manifest.get("specs", {})
    if not isinstance(recorded, dict):
        return [f"{manifest_path} cannot be read: run `creality derive`"]
    current = {p.stem: p for p in layout.spec_files()}
    for name, path in current.items():
        if name not in recorded:
            problems.append(f"spec {name} ({path}) has never been generated")
        elif recorded[name].get("sha256") != _sha256(path.read_bytes()):
            problems.append(f"spec {name} is stale: {path} changed since the last derive")
    for name in sorted(set(recorded) - set(current)):
        problems.append(f"spec {name} was removed from derivations/ but is still generated")
    if problems:
        return problems
    derivations = derive_all(layout)
    statuses = {
        name: entry.get("verification")
        for name, entry in recorded.items()
        if isinstance(entry, dict)
    }
    expected = render_all(derivations, layout, statuses)
    for rel, text in expected.items():
        path = layout.generated / rel
        if not path.is_file():
            problems.append(f"generated/{rel} is missing")
        elif path.read_bytes() != text.encode():
            problems.append(f"generated/{rel} differs from what the specs generate")
    present = {
        p.relative_to(layout.generated).as_posix()
        for p in layout.generated.rglob("*")
        if p.is_file() and not _ignored(p.relative_to(layout.generated))
    }
    for rel in sorted(present - set(expected)):
        problems.append(f"generated/{rel} is not produced by any spec")
    return problems


def _ignored(rel: Path) -> bool:
    """Build by-products inside generated/ that no spec produces and no check concerns."""
    parts = rel.parts
    return "__pycache__" in parts or parts[0] in ("build", "dist") or parts[0].endswith(".egg-info")
