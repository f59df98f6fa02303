"""Loopback simulators of provider APIs for tests, the demo and benchmarks.

Every sandbox listens on ``127.0.0.1`` only, is built on :class:`sandbox.server.SandboxServer`
(standard library only) and is excluded from deployment.
"""

from sandbox.server import Headers, Request, Response, SandboxServer, json_response

__all__ = ["Headers", "Request", "Response", "SandboxServer", "json_response"]
