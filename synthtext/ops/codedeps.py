"""Which of the project's files a module runs: its import closure, read from the source.

One source for a stage's code dependencies. ``dvc.yaml`` lists, for each stage run as
``python -m MODULE``, exactly the project files in MODULE's import closure (``check`` says where it
does not; ``write`` rewrites those lists), and the caches keyed on code (per-clip Prefect tasks, rendered
videos, training checkpoints) hash the closure of the module that does the work (``code_version``), so
that a change to any function a result was computed with invalidates it.

Nothing is imported: imports are read with ``ast`` from every module body, functions included, and
followed within the project packages (``PACKAGES``). Importing ``a.b.c`` also runs ``a/__init__.py``
and ``a/b/__init__.py``, so those are in the closure too.

Run ``python -m synthtext.ops.codedeps`` to check ``dvc.yaml`` (exit 1 naming each file), ``--write`` to
fix it.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import io
import re
import sys
from pathlib import Path

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from synthtext.ops.errors import SynthTextError
from synthtext.ops.files import write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("synthtext", "flows", "stages")  # the project's own code: dependencies are followed inside them
STAGE_COMMAND = re.compile(r"^python -m ([\w.]+)$")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of dotted module ``name`` under ``root``, or None when it is not a project module."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package(name: str, path: Path) -> str:
    """The package a module's relative imports start from."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(name: str, root: Path = ROOT) -> set[str]:
    """The project modules that module ``name`` imports anywhere in its source (functions included)."""
    path = module_file(name, root)
    if path is None:
        raise SynthTextError(f"{name} is not a module of this project ({', '.join(PACKAGES)})")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = _package(name, path).split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {m for m in found if module_file(m, root) is not None}


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@functools.cache
def closure(*entries: str, root: Path = ROOT) -> tuple[Path, ...]:
    """Every project file that importing ``entries`` (dotted names) can run, sorted, relative to ``root``."""
    seen: set[str] = set()
    todo = [parent for entry in entries for parent in _with_parents(entry)]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name, root) is None:
            continue
        seen.add(name)
        for imported in imported_modules(name, root):
            todo.extend(_with_parents(imported))
    return tuple(sorted(module_file(m, root).relative_to(root) for m in seen))


def code_version(*entries: str, root: Path = ROOT) -> str:
    """A short hash of the files in the closure of ``entries``: changes when any code they run changes."""
    digest = hashlib.sha256()
    for path in closure(*entries, root=root):
        digest.update(path.as_posix().encode() + b"\0" + (root / path).read_bytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- dvc.yaml


def _is_code(dep: str) -> bool:
    return dep.split("/")[0] in PACKAGES


def stage_modules(spec: dict) -> dict[str, str]:
    """Stage name -> the module its ``cmd`` runs (stages run as ``python -m MODULE``)."""
    out = {}
    for stage, body in (spec.get("stages") or {}).items():
        match = STAGE_COMMAND.match(str(body.get("cmd", "")).strip())
        if match:
            out[stage] = match.group(1)
    return out


def expected_deps(module: str, root: Path = ROOT) -> list[str]:
    return [p.as_posix() for p in closure(module, root=root)]


def check(root: Path = ROOT) -> list[str]:
    """Each disagreement between ``dvc.yaml``'s code dependencies and the import closures, one line each."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    problems = []
    for stage, module in stage_modules(spec).items():
        listed = {str(d) for d in spec["stages"][stage].get("deps") or [] if _is_code(str(d))}
        wanted = set(expected_deps(module, root))
        problems += [f"dvc.yaml stage {stage}: missing dependency {p} (imported by {module})"
                     for p in sorted(wanted - listed)]
        problems += [f"dvc.yaml stage {stage}: {p} is listed but {module} never imports it"
                     for p in sorted(listed - wanted)]
    return problems


def write(root: Path = ROOT) -> int:
    """Rewrite each stage's code dependencies as its closure (other deps and comments kept): the count changed."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = root / "dvc.yaml"
    spec = yaml.load(path.read_text())
    changed = 0
    for stage, module in stage_modules(spec).items():
        deps = spec["stages"][stage].get("deps") or CommentedSeq()
        code = expected_deps(module, root)
        if list(map(str, deps)) != [d for d in deps if not _is_code(str(d))] + code:
            for index in reversed(range(len(deps))):  # item by item: comments on the other deps stay
                if _is_code(str(deps[index])):
                    del deps[index]
            deps.extend(code)
            spec["stages"][stage]["deps"] = deps
            changed += 1
    if changed:
        text = io.StringIO()
        yaml.dump(spec, text)
        write_text_atomic(path, text.getvalue())
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthtext.ops.codedeps",
                                     description="Check (or --write) dvc.yaml's code dependencies against the imports.")
    parser.add_argument("--write", action="store_true", help="rewrite the stages' code dependencies in dvc.yaml")
    args = parser.parse_args(argv)
    if args.write:
        print(f"dvc.yaml: {write()} stage(s) updated")
    problems = check()
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print("dvc.yaml: every stage's code dependencies match its imports")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
