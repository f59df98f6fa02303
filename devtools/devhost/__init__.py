"""The local dev host: runs ``function_app.app`` like the Functions host, on embedded backends.

See :class:`devtools.devhost.host.DevHost` and :mod:`devtools.devhost.settings_file`.
"""

from devtools.devhost.bindings import FunctionSpec, discover_functions, resolve_expression
from devtools.devhost.host import DevHost
from devtools.devhost.settings_file import apply_to_environ, load_local_settings, local_http_port

__all__ = [
    "DevHost",
    "FunctionSpec",
    "apply_to_environ",
    "discover_functions",
    "load_local_settings",
    "local_http_port",
    "resolve_expression",
]
