"""Size rule (CONTRIBUTING.md, "Size"): no project .py file over 600 lines, no function over
80 lines unless its docstring has a line starting with "Long because" that says why.

Every .py file of the project counts (packages, nodes, bench/, tests/, launch/, tools/,
setup.py); generated and local folders (.venv, build, install, log, data, hidden folders)
do not. A function's length runs from its `def` line to its last line (nested functions
count inside their parent and on their own).
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
REASON = "Long because"
SKIP_DIRS = {".venv", "venv", "build", "install", "log", "data", "out", "__pycache__",
             "node_modules"}


def project_files(root: Path = ROOT):
    """Sorted .py files of the project below `root` (skipping SKIP_DIRS and hidden folders)."""
    out = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).parts[:-1]
        if any(p in SKIP_DIRS or p.startswith(".") for p in parts):
            continue
        out.append(path)
    return sorted(out)


def file_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def has_reason(fn: ast.AST) -> bool:
    doc = ast.get_docstring(fn) or ""
    return any(line.strip().startswith(REASON) for line in doc.splitlines())


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES):
    """[(qualified name, first line, length, has a "Long because" reason)] of the functions
    and methods in `path` longer than `limit` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                n = child.end_lineno - child.lineno + 1
                if n > limit:
                    out.append((name, child.lineno, n, has_reason(child)))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def test_no_file_over_the_limit():
    big = [f"{p.relative_to(ROOT)}: {n} lines" for p in project_files()
           if (n := file_lines(p)) > MAX_FILE_LINES]
    assert not big, (f"files over {MAX_FILE_LINES} lines (split them by concern, see "
                     "CONTRIBUTING.md, Size):\n" + "\n".join(big))


def test_no_function_over_the_limit_without_a_reason():
    bad = [f"{p.relative_to(ROOT)}:{line}: {name} ({n} lines)"
           for p in project_files() for name, line, n, ok in long_functions(p) if not ok]
    assert not bad, (f"functions over {MAX_FUNCTION_LINES} lines whose docstring has no line "
                     f"starting with '{REASON}' (split them into named helpers, see "
                     "CONTRIBUTING.md, Size):\n" + "\n".join(bad))


def test_the_checker(tmp_path):
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "pkg").mkdir()
    src = tmp_path / "pkg" / "m.py"
    src.write_text(
        f"def short():\n    return 1\n\n\n"
        f"class C:\n    def long(self):\n{body}\n\n"
        f"    def excused(self):\n        '''Does a lot.\n\n        Long because one table.'''\n"
        f"{body}\n")
    found = {name: (n, ok) for name, _line, n, ok in long_functions(src)}
    assert set(found) == {"C.long", "C.excused"}
    assert found["C.long"] == (MAX_FUNCTION_LINES + 1, False)
    assert found["C.excused"][1] is True
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "x.py").write_text("")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "y.py").write_text("")
    assert project_files(tmp_path) == [src]
    assert file_lines(src) > MAX_FUNCTION_LINES
