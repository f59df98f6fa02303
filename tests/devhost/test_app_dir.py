"""``ihub dev`` runs the app folder's function_app.py and host.json, and refuses what the host refuses.

Each test writes a small app folder and starts the real ``ihub dev`` (``python -m devtools.cli``)
in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST_JSON = {"version": "2.0", "extensions": {"http": {"routePrefix": "custom"}}}


def write_app(folder: Path, source: str, host_json: dict[str, object] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "function_app.py").write_text(textwrap.dedent(source))
    (folder / "host.json").write_text(json.dumps(host_json or HOST_JSON))
    values = {"FUNCTIONS_WORKER_RUNTIME": "python", "IHUB_DATA_DIR": str(folder / ".data"), "PROBE": "from-app-dir"}
    (folder / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return folder


def ihub_dev(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IHUB_")}
    env["PYTHONPATH"] = str(ROOT)  # the dev host's own code; ROOT's function_app is importable too
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.cli", "dev", "--port", "0", "--no-timers", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def base_url(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    if "dev host on" not in line:
        process.kill()
        raise AssertionError(f"no start line: {line!r}\n{process.communicate(timeout=10)[1]}")
    return line.split(" on ", 1)[1].split()[0]


PROBE_APP = """
    import os

    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


    @app.route(route="probe")
    def probe(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"{__file__}|{os.environ['PROBE']}")
"""


def test_app_dir_function_app_and_host_json_are_used(tmp_path: Path, running: list[subprocess.Popen[str]]) -> None:
    app_dir = write_app(tmp_path / "app", PROBE_APP)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    process = ihub_dev("--app-dir", str(app_dir), cwd=elsewhere)
    running.append(process)
    url = base_url(process)
    assert url.endswith("/custom")  # host.json routePrefix
    answer = httpx.get(f"{url}/probe", timeout=10).text
    assert answer == f"{app_dir / 'function_app.py'}|from-app-dir"


def test_current_folder_is_the_default_app_dir(tmp_path: Path, running: list[subprocess.Popen[str]]) -> None:
    app_dir = write_app(tmp_path / "app", PROBE_APP, {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}})
    process = ihub_dev(cwd=app_dir)
    running.append(process)
    url = base_url(process)
    assert httpx.get(f"{url}/probe", timeout=10).text.startswith(str(app_dir / "function_app.py"))


def refused(tmp_path: Path, source: str) -> str:
    app_dir = write_app(tmp_path / "app", source)
    process = ihub_dev(cwd=app_dir)
    out, err = process.communicate(timeout=60)
    assert process.returncode not in (0, None), out
    return err


def test_admin_and_runtime_routes_are_refused(tmp_path: Path) -> None:
    err = refused(
        tmp_path,
        """
        import azure.functions as func

        app = func.FunctionApp()

        @app.route(route="admin/things")
        def things(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")

        @app.route(route="/Runtime/x")
        def rt(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")

        @app.route(route="fine")
        def fine(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
    )
    builtin = "The specified route conflicts with one or more built in routes."
    assert f"The 'things' function is in error: {builtin}" in err
    assert f"The 'rt' function is in error: {builtin}" in err
    assert "'fine'" not in err


def test_conflicting_routes_are_refused(tmp_path: Path) -> None:
    err = refused(
        tmp_path,
        """
        import azure.functions as func

        app = func.FunctionApp()

        @app.route(route="items/{id}", methods=["GET"])
        def first(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")

        @app.route(route="/ITEMS/{id}/", methods=["GET", "PUT"])
        def second(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")

        @app.route(route="items/{id}", methods=["DELETE"])
        def third(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")
        """,
    )
    conflict = "The route specified conflicts with the route defined by function 'first'."
    assert f"The 'second' function is in error: {conflict}" in err
    assert "'third'" not in err  # same template, disjoint methods: the host accepts it


def test_binding_name_with_underscore_is_refused(tmp_path: Path) -> None:
    err = refused(
        tmp_path,
        """
        import azure.functions as func

        app = func.FunctionApp()

        @app.service_bus_queue_trigger(arg_name="sb_msg", queue_name="q", connection="ServiceBusConnection")
        def worker(sb_msg: func.ServiceBusMessage) -> None:
            pass
        """,
    )
    expected = "The 'worker' function is in error: The binding name sb_msg is invalid. Please assign a valid name"
    assert expected in err
