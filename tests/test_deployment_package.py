"""The deployment package: what ``.funcignore`` lets through, and that it stands on its own.

Core Tools (``func azure functionapp publish``) and the Functions deployment skip every path
that ``.funcignore`` matches, with ``.gitignore`` semantics. This test implements those
semantics, lists the files that would be deployed, and proves that:

- no dev-only code is in the set (``devtools``, ``sandbox``, ``tests``, ``bench``);
- no deployable Python file imports dev-only code, at module level or lazily inside a
  function body (parsed with ``ast``, relative imports resolved, ``importlib.import_module``
  and ``__import__`` with a literal name included);
- ``function_app`` imports and indexes (``app.get_functions()``) from a temporary copy of that
  set alone, in a clean interpreter where nothing can be loaded from this checkout.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEV_ONLY = ("devtools", "sandbox", "tests", "bench")


# --- .funcignore (gitignore) semantics -------------------------------------------------------------------


def _glob_to_regex(glob: str) -> str:
    """One gitignore glob (no leading/trailing slash handling) as a regex over a relative path."""
    out, i = "", 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**/", i):
            out += "(?:.*/)?"  # zero or more whole directories
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out += "/.*"  # everything inside
            i += 3
        elif glob.startswith("**", i):
            out += ".*"
            i += 2
        elif char == "*":
            out += "[^/]*"
            i += 1
        elif char == "?":
            out += "[^/]"
            i += 1
        elif char == "[":
            end = glob.find("]", i + 2 if glob[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out += re.escape(char)
                i += 1
                continue
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out += f"[{body.replace(chr(92), chr(92) * 2)}]"
            i = end + 1
        elif char == "\\" and i + 1 < len(glob):
            out += re.escape(glob[i + 1])
            i += 2
        else:
            out += re.escape(char)
            i += 1
    return out


class FuncIgnore:
    """``.funcignore`` rules, matched with gitignore semantics.

    Args:
        text: The file's content.
    """

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[re.Pattern[str], bool, bool]] = []  # regex, negated, directories only
        for raw in text.splitlines():
            line = raw.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            line = re.sub(r"(?<!\\)\s+$", "", line)  # trailing spaces, unless escaped
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            elif line.startswith("\\!") or line.startswith("\\#"):
                line = line[1:]
            directory_only = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line  # a slash at the start or middle anchors the pattern to the root
            body = _glob_to_regex(line.lstrip("/"))
            prefix = "" if anchored else "(?:.*/)?"
            self.rules.append((re.compile(f"^{prefix}{body}$"), negated, directory_only))

    def _matches(self, path: str, is_dir: bool) -> bool | None:
        verdict: bool | None = None
        for regex, negated, directory_only in self.rules:
            if directory_only and not is_dir:
                continue
            if regex.match(path):
                verdict = not negated
        return verdict

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether a path (relative, ``/``-separated) is left out of the package.

        A path inside an ignored directory is ignored whatever later rules say (git cannot
        re-include a file whose parent directory is excluded).
        """
        parts = PurePosixPath(path).parts
        for depth in range(1, len(parts)):
            if self._matches("/".join(parts[:depth]), True):
                return True
        return bool(self._matches(path, is_dir))


def deployable_files(root: Path = ROOT) -> list[str]:
    """Every file under ``root`` that ``.funcignore`` does not exclude (relative, ``/``-separated)."""
    rules = FuncIgnore((root / ".funcignore").read_text())
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else f"{relative}/"
        dirs[:] = sorted(d for d in dirs if not rules.ignored(f"{prefix}{d}", is_dir=True))
        found += [f"{prefix}{name}" for name in sorted(files) if not rules.ignored(f"{prefix}{name}")]
    return found


@lru_cache(maxsize=1)
def package() -> tuple[str, ...]:
    return tuple(deployable_files())


# --- the rules themselves ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "ignored"),
    [
        ("tests", "tests", True, True),
        ("tests", "tests/test_a.py", False, True),
        ("tests", "shared/tests/x.py", False, True),  # no slash: matches at any depth
        ("/tests", "shared/tests/x.py", False, False),  # leading slash: root only
        ("docs/", "docs", False, False),  # trailing slash: directories only
        ("docs/", "docs", True, True),
        ("*.md", "README.md", False, True),
        ("*.md", "a/b/notes.md", False, True),
        ("a/*.py", "a/x.py", False, True),
        ("a/*.py", "a/b/x.py", False, False),  # * does not cross a slash
        ("a/**/x.py", "a/x.py", False, True),
        ("a/**/x.py", "a/b/c/x.py", False, True),
        ("**/cache", "deep/er/cache", True, True),
        ("a/**", "a/b/c", False, True),
        ("?.txt", "a.txt", False, True),
        ("?.txt", "ab.txt", False, False),
        ("[ab].txt", "b.txt", False, True),
        ("[!ab].txt", "b.txt", False, False),
        (".git*", ".gitignore", False, True),
        (".git*", ".git", True, True),
        ("# comment", "# comment", False, False),
        ("\\#hash", "#hash", False, True),
    ],
)
def test_funcignore_glob_semantics(pattern: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert FuncIgnore(pattern).ignored(path, is_dir) is ignored


def test_negation_and_excluded_parents() -> None:
    rules = FuncIgnore("*.md\n!README.md\nbuild/\n!build/keep.txt\n")
    assert rules.ignored("NOTES.md")
    assert not rules.ignored("README.md")
    assert rules.ignored("build/keep.txt")  # the parent directory stays excluded


# --- the package -------------------------------------------------------------------------------------------


def test_the_package_has_the_app_and_no_dev_only_code() -> None:
    files = package()
    for needed in ("function_app.py", "host.json", "requirements.txt"):
        assert needed in files
    assert any(f.startswith("shared/") for f in files) and any(f.startswith("adapters/") for f in files)
    leaked = [f for f in files if f.split("/", 1)[0] in DEV_ONLY]
    assert leaked == []
    assert "local.settings.json" not in files and "local.settings.sample.json" not in files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def _module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module a file imports anywhere in it (function bodies included), absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def test_import_scan_sees_lazy_relative_and_dynamic_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "import os\n"
        "def f():\n"
        "    from devtools.devhost import DevHost\n"
        "    import importlib\n"
        "    importlib.import_module('sandbox.github')\n"
        "    __import__('bench.run')\n"
        "class C:\n"
        "    def g(self):\n"
        "        from ..tests import helper\n"
    )
    found = imported_modules(source, "shared.sub.mod")
    assert {"devtools.devhost", "sandbox.github", "bench.run", "shared.tests"} <= found


def test_no_deployable_file_imports_dev_only_code() -> None:
    offenders: dict[str, list[str]] = {}
    for relative in package():
        if not relative.endswith(".py"):
            continue
        imports = imported_modules(ROOT / relative, _module_name(relative))
        bad = sorted(name for name in imports if name.split(".", 1)[0] in DEV_ONLY)
        if bad:
            offenders[relative] = bad
    assert offenders == {}


INDEX_SCRIPT = r"""
import importlib, json, sys
from importlib.abc import MetaPathFinder

package_root, checkout, dev_only = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))

class Refuse(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".", 1)[0] in dev_only:
            raise ImportError(f"dev-only module {name} imported from the deployment package")
        return None

# Only the package and the installed dependencies: no editable-install finder pointing at the checkout.
sys.meta_path[:] = [Refuse()] + [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
def from_checkout(path):
    return path.startswith(checkout + "/") and not path.startswith(sys.prefix + "/") or path == checkout

sys.path[:] = [package_root] + [p for p in sys.path if p and not from_checkout(p)]

import function_app
functions = function_app.app.get_functions()
names = sorted(f.get_function_name() for f in functions)
for module in sys.argv[4:]:
    importlib.import_module(module)  # every deployable module imports from the package alone
outside = sorted(
    name for name, mod in list(sys.modules.items())
    if getattr(mod, "__file__", None) and from_checkout(mod.__file__)
)
print(json.dumps({"functions": names, "loaded_from_checkout": outside}))
"""


def test_function_app_imports_and_indexes_from_the_package_alone(tmp_path: Path) -> None:
    target = tmp_path / "package"
    modules: list[str] = []
    for relative in package():
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, destination)
        if relative.endswith(".py") and "/" in relative:
            modules.append(_module_name(relative))
    result = subprocess.run(
        [sys.executable, "-I", "-c", INDEX_SCRIPT, str(target), str(ROOT), ",".join(DEV_ONLY), *modules],
        cwd=target,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded_from_checkout"] == []
    import function_app
    from devtools.devhost.bindings import discover_functions

    assert report["functions"] == sorted(spec.name for spec in discover_functions(function_app.app))
    assert {"WebhookReceiver", "SyncInboundWorker", "AdminApi"} <= set(report["functions"])
