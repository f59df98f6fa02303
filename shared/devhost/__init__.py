"""The local dev host: runs ``function_app.app`` like the Functions host, on embedded backends.

See :class:`shared.devhost.host.DevHost` and :mod:`shared.devhost.settings_file`.
"""

from shared.devhost.bindings import FunctionSpec, discover_functions, resolve_expression
from shared.devhost.host import DevHost
from shared.devhost.settings_file import apply_to_environ, load_local_settings, local_http_port

__all__ = [
    "DevHost",
    "FunctionSpec",
    "apply_to_environ",
    "discover_functions",
    "load_local_settings",
    "local_http_port",
    "resolve_expression",
]
