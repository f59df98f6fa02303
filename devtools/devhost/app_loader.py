"""Load ``function_app.py`` from an app folder, as ``func start`` does from its script root.

The module is loaded from the file itself (``importlib.util.spec_from_file_location``), never
through the import system, so a copy of ``function_app`` installed in the virtualenv cannot be
picked up instead. The folder is put first on ``sys.path`` so the app's own packages (``shared``,
``adapters``...) resolve from it too; modules of those names already imported from elsewhere
are dropped first, so the app folder's versions are the ones its lazy imports get.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Collection
from pathlib import Path
from types import ModuleType

import azure.functions as func

from shared.errors import ConfigurationError

__all__ = ["APP_SCRIPT", "load_function_app", "prefer_app_dir"]

APP_SCRIPT = "function_app.py"


def _top_level_names(app_dir: Path) -> set[str]:
    names = {p.stem for p in app_dir.glob("*.py")}
    names |= {p.name for p in app_dir.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    return names


def prefer_app_dir(app_dir: Path, keep: Collection[str] = ("devtools",)) -> list[str]:
    """Make imports of the app's top-level modules resolve from ``app_dir``.

    Args:
        app_dir: The app folder.
        keep: Top-level packages never dropped (the dev host itself is a tool, not the app).

    Returns:
        Names of modules that had been imported from elsewhere and were dropped from
        ``sys.modules`` (imported again from ``app_dir`` on next use).
    """
    root = app_dir.resolve()
    if str(root) in sys.path:
        sys.path.remove(str(root))
    sys.path.insert(0, str(root))
    shadowed = _top_level_names(root) - set(keep)
    dropped: list[str] = []
    for name, module in list(sys.modules.items()):
        top = name.split(".", 1)[0]
        if top not in shadowed or module is None:
            continue
        origin = getattr(module, "__file__", None)
        if origin is None or not Path(origin).resolve().is_relative_to(root):
            del sys.modules[name]
            dropped.append(name)
    return dropped


def load_function_app(app_dir: Path) -> tuple[func.FunctionApp, ModuleType]:
    """Import ``<app_dir>/function_app.py`` and find its ``FunctionApp``.

    Args:
        app_dir: The app folder (the one holding ``host.json``).

    Returns:
        The app object (the module's ``app``, else its only ``FunctionApp``) and the module,
        registered in ``sys.modules`` as ``function_app``.

    Raises:
        ConfigurationError: There is no ``function_app.py``, or it defines no ``FunctionApp``.
        Exception: What importing the module raised.
    """
    script = app_dir.resolve() / APP_SCRIPT
    if not script.is_file():
        raise ConfigurationError(f"{script} not found: run 'ihub dev' in the app folder or pass --app-dir")
    prefer_app_dir(script.parent)
    spec = importlib.util.spec_from_file_location("function_app", script)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("function_app", None)
        raise
    app = getattr(module, "app", None)
    if not isinstance(app, func.FunctionApp):
        found = [value for value in vars(module).values() if isinstance(value, func.FunctionApp)]
        if len(found) != 1:
            raise ConfigurationError(f"{script} must define one azure.functions.FunctionApp (found {len(found)})")
        app = found[0]
    return app, module
