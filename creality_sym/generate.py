"""Write ``generated/`` from ``derivations/``: deterministic and atomic.

Everything is rendered into a sibling temporary folder first; only when every
spec loaded, derived and rendered is the old folder swapped out, so a failed
run leaves ``generated/`` exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
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


def load_all(layout: Layout, names: list[str] | None = None) -> list[Spec]:
    """Load every spec (or the named ones), raising SpecError with file:line."""
    files = layout.spec_files()
    by_name = {p.stem: p for p in files}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise SpecError(
                f"unknown spec(s) {unknown}; available: {sorted(by_name)} in {layout.derivations}"
            )
        files = [by_name[n] for n in names]
    return [load_spec(p) for p in files]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def render_all(derivations: list[Derivation], layout: Layout) -> dict[str, str]:
    """Every generated file, ``{relative path: text}``, in a deterministic order."""
    files: dict[str, str] = {}
    for d in derivations:
        spec_file = f"derivations/{Path(d.spec.path).name}"
        files.update(numpy_backend.render(d, spec_file=spec_file))
        files.update(cuda_backend.render(d, spec_file=spec_file))
    files.update(numpy_backend.render_runtime([d.spec.name for d in derivations]))
    files.update(cuda_backend.render_runtime([d.spec.name for d in derivations]))
    files["DERIVATIONS.md"] = derivations_markdown(derivations)
    manifest = {
        "generator": f"creality_sym {GENERATOR_VERSION}",
        "specs": {
            d.spec.name: {
                "source": f"derivations/{Path(d.spec.path).name}",
                "sha256": d.spec.digest,
            }
            for d in derivations
        },
        "files": {path: _sha256(text.encode()) for path, text in sorted(files.items())},
    }
    files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    return dict(sorted(files.items()))


def write_tree(files: dict[str, str], target: Path) -> None:
    """Atomically replace ``target`` with exactly ``files`` (see :mod:`creality_sym.atomic`)."""
    from creality_sym.atomic import write_tree as atomic_write_tree

    atomic_write_tree(files, Path(target))


def derive_all(layout: Layout) -> list[Derivation]:
    """Load and derive every spec of the project."""
    return [derive(spec) for spec in load_all(layout)]


def stale_report(layout: Layout) -> list[str]:
    """Reasons ``generated/`` is out of sync with ``derivations/`` (empty when in sync)."""
    problems: list[str] = []
    manifest_path = layout.generated / MANIFEST
    if not manifest_path.is_file():
        return [f"{manifest_path} is missing: run `creality derive`"]
    manifest = json.loads(manifest_path.read_text())
    recorded = manifest.get("specs", {})
    current = {p.stem: p for p in layout.spec_files()}
    for name, path in current.items():
        if name not in recorded:
            problems.append(f"spec {name} ({path}) has never been generated")
        elif recorded[name]["sha256"] != _sha256(path.read_bytes()):
            problems.append(f"spec {name} is stale: {path} changed since the last derive")
    for name in sorted(set(recorded) - set(current)):
        problems.append(f"spec {name} was removed from derivations/ but is still generated")
    if problems:
        return problems
    expected = render_all(derive_all(layout), layout)
    for rel, text in expected.items():
        path = layout.generated / rel
        if not path.is_file():
            problems.append(f"generated/{rel} is missing")
        elif path.read_bytes() != text.encode():
            problems.append(f"generated/{rel} differs from what the specs generate")
    present = {
        p.relative_to(layout.generated).as_posix()
        for p in layout.generated.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    for rel in sorted(present - set(expected)):
        problems.append(f"generated/{rel} is not produced by any spec")
    return problems
