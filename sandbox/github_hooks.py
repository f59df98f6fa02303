"""Repository webhooks for the GitHub sandbox: create, list and delete hooks, and deliver to them.

``POST /repos/{owner}/{repo}/hooks`` takes ``{"name": "web", "active", "events", "config": {"url",
"content_type", "secret", "insecure_ssl"}}`` and answers 201 with the hook (its ``id``; the
secret is never echoed, as GitHub shows ``"********"``); ``GET`` lists them; ``DELETE
.../hooks/{id}`` answers 204 (404 when unknown). :meth:`GitHubHooks.deliver` sends an event to
every active hook subscribed to it, signed with that hook's secret.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Mapping
from typing import Any

import httpx

from sandbox.server import Request, Response, json_response

_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


class GitHubHooks:
    """The hooks of one sandbox repository (mixed into :class:`sandbox.github.GitHubSandbox`)."""

    hooks: dict[int, dict[str, Any]]

    def _install_hooks(self) -> None:
        self.hooks = {}
        self._hook_ids = itertools.count(9000001)
        self._hooks_lock = threading.Lock()
        self.route("POST", _REPO + "/hooks", self._create_hook)  # type: ignore[attr-defined]
        self.route("GET", _REPO + "/hooks", self._list_hooks)  # type: ignore[attr-defined]
        self.route("DELETE", _REPO + r"/hooks/(?P<hook>\d+)", self._delete_hook)  # type: ignore[attr-defined]

    @staticmethod
    def _shown(hook: Mapping[str, Any]) -> dict[str, Any]:
        config = {**hook["config"], "secret": "********"} if "secret" in hook["config"] else dict(hook["config"])
        return {**hook, "config": config}

    def _create_hook(self, request: Request) -> Response:
        try:
            body = request.json_object()
        except ValueError as exc:
            return json_response(400, {"message": f"Problems parsing JSON: {exc}"})
        config = body.get("config")
        if body.get("name", "web") != "web" or not isinstance(config, dict) or not isinstance(config.get("url"), str):
            return json_response(422, {"message": "Validation Failed", "errors": [{"field": "config.url"}]})
        events = body.get("events", ["push"])
        with self._hooks_lock:
            hook_id = next(self._hook_ids)
            hook: dict[str, Any] = {"id": hook_id, "type": "Repository", "name": "web",
                                    "active": bool(body.get("active", True)), "events": list(events),
                                    "config": dict(config)}
            self.hooks[hook_id] = hook
        return json_response(201, self._shown(hook))

    def _list_hooks(self, request: Request) -> Response:
        with self._hooks_lock:
            return json_response(200, [self._shown(h) for h in self.hooks.values()])

    def _delete_hook(self, request: Request) -> Response:
        with self._hooks_lock:
            if self.hooks.pop(int(str(request.params["hook"])), None) is None:
                return json_response(404, {"message": "Not Found"})
        return Response(204)

    def deliver(self, event: str, payload: Mapping[str, Any], client: httpx.Client | None = None) -> list[int]:
        """Send ``event`` to every active hook that subscribes to it; returns the receivers' statuses."""
        with self._hooks_lock:
            targets = [h for h in self.hooks.values() if h["active"] and (event in h["events"] or "*" in h["events"])]
        body = json.dumps(payload, separators=(",", ":")).encode()
        statuses = []
        for hook in targets:
            secret = str(hook["config"].get("secret", ""))
            sent = self.send_webhook(hook["config"]["url"], secret, event, body, client=client)  # type: ignore[attr-defined]
            statuses.append(sent.status_code)
        return statuses
