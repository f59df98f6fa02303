"""The data behind the Slack sandbox: one workspace's users, channels, messages and threads.

Records are kept with indexes so that a page costs time proportional to the page, never to the
workspace: users and channels are insertion-ordered lists with an id → position map (cursors name
the next id, like Slack's ``dXNlcjpVMDYxTkZUVDI=`` = ``user:U061NFTT2``), and each channel's
timeline is a list of message timestamps kept sorted (timestamps only grow), searched with
``bisect`` (cursors name the next timestamp, like Slack's ``next_ts:1512085861000543``).

Every mutation advances a deterministic clock (it starts at 2024-01-01T00:00:00Z) and returns the
Events API ``event`` object it would cause, so :mod:`sandbox.slack` can deliver it. Ids come from
a seeded generator, so two workspaces with the same seed are identical. :attr:`touched` counts the
records each read examines (instrumentation for the "page cost does not grow" tests).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import random
import threading
import uuid
from typing import Any

EPOCH_SECONDS = 1704067200  # 2024-01-01T00:00:00Z
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Radia", "Dennis", "Frances", "Tim", "Anita"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Perlman", "Ritchie", "Allen"]
_TOPICS = ["general", "random", "engineering", "support", "sales", "design", "ops", "billing", "launch", "hiring"]
_WORDS = ["deploy", "review", "customer", "invoice", "ticket", "release", "meeting", "bug", "roadmap", "demo"]


class SlackError(Exception):
    """A Web API failure answered as ``{"ok": false, "error": code}`` (HTTP 200, like Slack)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def encode_cursor(kind: str, value: str) -> str:
    """Slack-style opaque cursor: base64 of ``kind:value``."""
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(cursor: str, kind: str) -> str:
    """The value inside a cursor made by :func:`encode_cursor`; ``SlackError("invalid_cursor")`` otherwise."""
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise SlackError("invalid_cursor") from None
    prefix, sep, value = text.partition(":")
    if not sep or prefix != kind or not value:
        raise SlackError("invalid_cursor")
    return value


def normalize_ts(value: str | float | int, error: str = "invalid_ts") -> str:
    """Canonical ``SSSSSSSSSS.UUUUUU`` form of a Slack timestamp (so string order is time order)."""
    text = str(value).strip()
    whole, _, frac = text.partition(".")
    digits = whole + frac
    if not (digits.isascii() and whole.isdigit()) or (frac and not frac.isdigit()) or len(frac) > 6 or len(whole) > 10:
        raise SlackError(error)
    return f"{int(whole):010d}.{frac.ljust(6, '0')}"


class SlackWorkspace:
    """One Slack workspace (team) with seeded, deterministic content.

    Args:
        seed: Seed of the id and content generator.
        team_name: Workspace name; the domain is its lower-case form.

    All public methods are thread-safe (one re-entrant lock).
    """

    def __init__(self, seed: int = 1, team_name: str = "Acme") -> None:
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self._ids: set[str] = set()
        self._us = EPOCH_SECONDS * 1_000_000
        self.team_id = self._new_id("T")
        self.team_name, self.domain = team_name, team_name.lower()
        self.app_id, self.bot_id = self._new_id("A"), self._new_id("B")
        self.touched = 0
        self._users: dict[str, dict[str, Any]] = {}
        self._user_order: list[str] = []
        self._user_pos: dict[str, int] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._channel_order: list[str] = []
        self._channel_pos: dict[str, int] = {}
        self._channel_names: dict[str, str] = {}  # live channel name → id
        self._messages: dict[str, dict[str, dict[str, Any]]] = {}  # channel → ts → message (replies too)
        self._timeline: dict[str, list[str]] = {}  # channel → sorted top-level ts
        self._threads: dict[tuple[str, str], list[str]] = {}  # (channel, thread_ts) → sorted reply ts
        self.bot_user_id = self.create_user("Sandbox Bot", is_bot=True)["id"]

    # -- clock and ids ----------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        while True:
            candidate = prefix + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(10))
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate

    def _tick(self) -> str:
        """Advance the clock by a little over a second and return the new ``ts``."""
        self._us += 1_000_100
        return f"{self._us // 1_000_000:010d}.{self._us % 1_000_000:06d}"

    def now_ts(self) -> str:
        """The clock's current ``ts`` (the last one handed out)."""
        with self.lock:
            return f"{self._us // 1_000_000:010d}.{self._us % 1_000_000:06d}"

    # -- users ------------------------------------------------------------------------------------

    def create_user(self, real_name: str, email: str | None = None, *, is_bot: bool = False) -> dict[str, Any]:
        """Add a member (``email`` defaults to ``first.last@<domain>.example``; bots have none)."""
        with self.lock:
            user_id = self._new_id("U")
            name = (email.split("@")[0] if email else real_name.lower().replace(" ", ".")).lower()
            stamp = int(self._tick().split(".")[0])
            profile: dict[str, Any] = {
                "real_name": real_name, "real_name_normalized": real_name, "display_name": name.split(".")[0],
                "display_name_normalized": name.split(".")[0], "title": "", "phone": "", "status_text": "",
                "status_emoji": "", "avatar_hash": user_id[-8:].lower(), "team": self.team_id,
                "image_72": f"https://avatars.slack-edge.example/{user_id}_72.png",
            }
            if not is_bot:
                profile["email"] = email or f"{name}@{self.domain}.example"
            else:
                profile["bot_id"] = self.bot_id
            user = {
                "id": user_id, "team_id": self.team_id, "name": name, "deleted": False, "color": "9f69e7",
                "real_name": real_name, "tz": "Europe/London", "tz_label": "Greenwich Mean Time", "tz_offset": 0,
                "profile": profile, "is_admin": False, "is_owner": False, "is_primary_owner": False,
                "is_restricted": False, "is_ultra_restricted": False, "is_bot": is_bot, "is_app_user": False,
                "updated": stamp,
            }
            self._users[user_id] = user
            self._user_pos[user_id] = len(self._user_order)
            self._user_order.append(user_id)
            return _copy_user(user)

    def update_user(self, user_id: str, *, real_name: str | None = None, email: str | None = None,
                    title: str | None = None, deleted: bool | None = None) -> dict[str, Any]:
        """Change a member (``deleted=True`` deactivates: Slack never removes users). ``user_not_found`` if unknown."""
        with self.lock:
            user = self._user(user_id)
            if real_name is not None:
                user["real_name"] = user["profile"]["real_name"] = user["profile"]["real_name_normalized"] = real_name
            if email is not None:
                user["profile"]["email"] = email
            if title is not None:
                user["profile"]["title"] = title
            if deleted is not None:
                user["deleted"] = bool(deleted)
            user["updated"] = int(self._tick().split(".")[0])
            return _copy_user(user)

    def _user(self, user_id: str) -> dict[str, Any]:
        try:
            return self._users[user_id]
        except KeyError:
            raise SlackError("user_not_found") from None

    def get_user(self, user_id: str) -> dict[str, Any]:
        """One member by id (``SlackError("user_not_found")`` if unknown)."""
        with self.lock:
            return _copy_user(self._user(user_id))

    @property
    def users(self) -> list[dict[str, Any]]:
        """Every member (bot included), in creation order."""
        with self.lock:
            return [_copy_user(self._users[u]) for u in self._user_order]

    @property
    def user_count(self) -> int:
        """How many members exist (the bot user included)."""
        return len(self._user_order)

    def list_users(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str]:
        """One ``users.list`` page and the next cursor (``""`` at the end)."""
        with self.lock:
            start = self._user_pos.get(decode_cursor(cursor, "user"), -1) if cursor else 0
            if start < 0:
                raise SlackError("invalid_cursor")
            ids = self._user_order[start : start + limit]
            self.touched += len(ids)
            end = start + len(ids)
            following = encode_cursor("user", self._user_order[end]) if end < len(self._user_order) else ""
            return [_copy_user(self._users[u]) for u in ids], following

    # -- channels ---------------------------------------------------------------------------------

    def create_channel(self, name: str, *, is_private: bool = False, creator: str | None = None,
                       purpose: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        """Create a channel; returns ``(channel, channel_created event)``. ``name_taken`` if the name exists."""
        with self.lock:
            if name in self._channel_names:
                raise SlackError("name_taken")
            channel_id = self._new_id("G" if is_private else "C")
            ts = self._tick()
            created = int(ts.split(".")[0])
            creator = creator or self.bot_user_id
            channel: dict[str, Any] = {
                "id": channel_id, "name": name, "is_channel": not is_private, "is_group": is_private,
                "is_im": False, "is_mpim": False, "is_private": is_private, "created": created,
                "is_archived": False, "is_general": not self._channels, "unlinked": 0, "name_normalized": name,
                "is_shared": False, "is_org_shared": False, "is_pending_ext_shared": False,
                "is_ext_shared": False, "context_team_id": self.team_id, "updated": created * 1000,
                "creator": creator, "is_member": True, "previous_names": [],
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": purpose, "creator": creator if purpose else "",
                            "last_set": created if purpose else 0},
                "num_members": max(len(self._users) - 1, 1),
            }
            self._channels[channel_id] = channel
            self._channel_pos[channel_id] = len(self._channel_order)
            self._channel_order.append(channel_id)
            self._channel_names[name] = channel_id
            self._messages[channel_id], self._timeline[channel_id] = {}, []
            event = {"type": "channel_created", "channel": {"id": channel_id, "name": name, "created": created,
                                                            "creator": creator, "is_channel": not is_private},
                     "event_ts": ts}
            return _public(channel), event

    def set_channel_archived(self, channel_id: str, archived: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
        """Archive (or unarchive) a channel; returns ``(channel, channel_archive|channel_unarchive event)``."""
        with self.lock:
            channel = self.channel(channel_id)
            channel["is_archived"] = archived
            ts = self._tick()
            channel["updated"] = int(ts.split(".")[0]) * 1000
            kind = "channel_archive" if archived else "channel_unarchive"
            return _public(channel), {"type": kind, "channel": channel_id, "user": self.bot_user_id, "event_ts": ts}

    def delete_channel(self, channel_id: str) -> dict[str, Any]:
        """Delete a channel (it leaves ``conversations.list``); returns the ``channel_deleted`` event."""
        with self.lock:
            channel = self.channel(channel_id)
            channel["_deleted"] = True
            self._channel_names.pop(channel["name"], None)
            return {"type": "channel_deleted", "channel": channel_id, "event_ts": self._tick()}

    def channel(self, channel_id: str, *, allow_archived: bool = True) -> dict[str, Any]:
        """The stored channel (``channel_not_found`` if unknown or deleted; ``is_archived`` if so and not allowed)."""
        channel = self._channels.get(channel_id)
        if channel is None:  # chat.postMessage also takes a channel name
            channel = self._channels.get(self._channel_names.get(channel_id.removeprefix("#"), ""))
        if channel is None or channel.get("_deleted"):
            raise SlackError("channel_not_found")
        if channel["is_archived"] and not allow_archived:
            raise SlackError("is_archived")
        return channel

    def get_channel(self, channel_id: str) -> dict[str, Any]:
        """A copy of one channel (``channel_not_found`` if unknown or deleted)."""
        with self.lock:
            return _public(self.channel(channel_id))

    @property
    def channels(self) -> list[dict[str, Any]]:
        """Every channel not deleted, in creation order."""
        with self.lock:
            return [_public(self._channels[c]) for c in self._channel_order if not self._channels[c].get("_deleted")]

    def list_channels(self, cursor: str | None, limit: int, types: set[str],
                      exclude_archived: bool) -> tuple[list[dict[str, Any]], str]:
        """One ``conversations.list`` page: ``limit`` channels are examined and the matching ones returned.

        Like Slack, a page may hold fewer than ``limit`` channels (even none) before the end.
        """
        with self.lock:
            start = self._channel_pos.get(decode_cursor(cursor, "team"), -1) if cursor else 0
            if start < 0:
                raise SlackError("invalid_cursor")
            ids = self._channel_order[start : start + limit]
            self.touched += len(ids)
            page = []
            for channel_id in ids:
                c = self._channels[channel_id]
                kind = "private_channel" if c["is_private"] else "public_channel"
                if c.get("_deleted") or kind not in types or (exclude_archived and c["is_archived"]):
                    continue
                page.append(_public(c))
            end = start + len(ids)
            following = encode_cursor("team", self._channel_order[end]) if end < len(self._channel_order) else ""
            return page, following

    # -- messages ---------------------------------------------------------------------------------

    def post_message(self, channel_id: str, text: str, user: str | None = None, *,
                     thread_ts: str | None = None, bot: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """Post a message (a thread reply when ``thread_ts`` names a message); returns ``(message, message event)``."""
        with self.lock:
            channel = self.channel(channel_id, allow_archived=False)
            cid = channel["id"]
            author = user or self.bot_user_id
            self._user(author)
            parent = None
            if thread_ts is not None:
                parent = self._messages[cid].get(normalize_ts(thread_ts, "invalid_thread_ts"))
                if parent is None or "parent_user_id" in parent:
                    raise SlackError("thread_not_found")
            ts = self._tick()
            message: dict[str, Any] = {"type": "message", "user": author, "text": text, "ts": ts, "team": self.team_id,
                                       "client_msg_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4))}
            if bot or author == self.bot_user_id:
                message |= {"bot_id": self.bot_id, "app_id": self.app_id}
                message.pop("client_msg_id")
            self._messages[cid][ts] = message
            if parent is None:
                self._timeline[cid].append(ts)  # ts only grows, so the list stays sorted
            else:
                message |= {"thread_ts": parent["ts"], "parent_user_id": parent["user"]}
                replies = self._threads.setdefault((cid, parent["ts"]), [])
                replies.append(ts)
                parent |= {"thread_ts": parent["ts"], "reply_count": len(replies), "latest_reply": ts,
                           "reply_users": sorted({self._messages[cid][r]["user"] for r in replies}),
                           "is_locked": False, "subscribed": False}
                parent["reply_users_count"] = len(parent["reply_users"])
            event = dict(message) | {"channel": cid, "event_ts": ts, "channel_type": _channel_type(channel)}
            return dict(message), event

    def message(self, channel_id: str, ts: str) -> dict[str, Any]:
        """The stored message (``channel_not_found`` / ``message_not_found``)."""
        cid = self.channel(channel_id)["id"]
        found = self._messages[cid].get(normalize_ts(ts, "message_not_found"))
        if found is None:
            raise SlackError("message_not_found")
        return found

    def edit_message(self, channel_id: str, ts: str, text: str,
                     editor: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Change a message's text; returns ``(message, message_changed event)``."""
        with self.lock:
            channel = self.channel(channel_id)
            message = self.message(channel["id"], ts)
            previous = dict(message)
            event_ts = self._tick()
            message["text"] = text
            message["edited"] = {"user": editor or message["user"], "ts": event_ts}
            event = {"type": "message", "subtype": "message_changed", "hidden": True, "channel": channel["id"],
                     "ts": event_ts, "event_ts": event_ts, "message": dict(message), "previous_message": previous,
                     "channel_type": _channel_type(channel)}
            return dict(message), event

    def delete_message(self, channel_id: str, ts: str) -> dict[str, Any]:
        """Remove a message (and its replies); returns the ``message_deleted`` event."""
        with self.lock:
            channel = self.channel(channel_id)
            cid = channel["id"]
            message = self.message(cid, ts)
            ts = message["ts"]
            del self._messages[cid][ts]
            if "parent_user_id" in message:
                replies = self._threads[(cid, message["thread_ts"])]
                replies.pop(bisect.bisect_left(replies, ts))
                parent = self._messages[cid].get(message["thread_ts"])
                if parent is not None:
                    parent["reply_count"] = len(replies)
            else:
                timeline = self._timeline[cid]
                timeline.pop(bisect.bisect_left(timeline, ts))
                for reply in self._threads.pop((cid, ts), []):
                    self._messages[cid].pop(reply, None)
            event_ts = self._tick()
            return {"type": "message", "subtype": "message_deleted", "hidden": True, "channel": cid,
                    "ts": event_ts, "deleted_ts": ts, "event_ts": event_ts, "previous_message": message,
                    "channel_type": _channel_type(channel)}

    def history(self, channel_id: str, *, cursor: str | None, limit: int, oldest: str | None,
                latest: str | None, inclusive: bool) -> tuple[list[dict[str, Any]], bool, str]:
        """One ``conversations.history`` page, newest first: ``(messages, has_more, next_cursor)``."""
        with self.lock:
            cid = self.channel(channel_id)["id"]
            timeline = self._timeline[cid]
            low = normalize_ts(oldest, "invalid_ts_oldest") if oldest else None
            if cursor:
                hi = bisect.bisect_right(timeline, normalize_ts(_cursor_ts(cursor), "invalid_cursor"))
            elif latest:
                high = normalize_ts(latest, "invalid_ts_latest")
                hi = bisect.bisect_right(timeline, high) if inclusive else bisect.bisect_left(timeline, high)
            else:
                hi = len(timeline)
            lo = 0 if low is None else (bisect.bisect_left if inclusive else bisect.bisect_right)(timeline, low)
            chosen = timeline[max(lo, hi - limit) : hi][::-1]
            self.touched += len(chosen)
            more = hi - len(chosen) > lo
            following = encode_cursor("next_ts", timeline[hi - len(chosen) - 1].replace(".", "")) if more else ""
            return [dict(self._messages[cid][ts]) for ts in chosen], more, following

    def replies(self, channel_id: str, thread_ts: str, *, cursor: str | None,
                limit: int) -> tuple[list[dict[str, Any]], bool, str]:
        """One ``conversations.replies`` page, oldest first (the parent leads the first page)."""
        with self.lock:
            parent = self.message(channel_id, thread_ts)
            cid = self.channel(channel_id)["id"]
            thread = [parent["ts"], *self._threads.get((cid, parent["ts"]), [])]
            start = bisect.bisect_left(thread, normalize_ts(_cursor_ts(cursor), "invalid_cursor")) if cursor else 0
            chosen = thread[start : start + limit]
            self.touched += len(chosen)
            end = start + len(chosen)
            following = encode_cursor("next_ts", thread[end].replace(".", "")) if end < len(thread) else ""
            return [dict(self._messages[cid][ts]) for ts in chosen], bool(following), following

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        """Every top-level message of a channel, oldest first."""
        with self.lock:
            cid = self.channel(channel_id)["id"]
            return [dict(self._messages[cid][ts]) for ts in self._timeline[cid]]

    def counts(self) -> dict[str, int]:
        """How many users, channels, top-level messages and thread replies exist."""
        with self.lock:
            top = sum(len(t) for t in self._timeline.values())
            return {"users": len(self._users), "channels": len(self.channels), "messages": top,
                    "replies": sum(len(m) for m in self._messages.values()) - top}

    # -- seeding ----------------------------------------------------------------------------------

    def seed(self, users: int = 0, channels: int = 0, messages_per_channel: int = 0) -> None:
        """Add generated members, channels (named after topics) and messages (some with thread replies)."""
        with self.lock:
            for _ in range(users):
                first, last = self._rng.choice(_FIRST), self._rng.choice(_LAST)
                self.create_user(f"{first} {last}", f"{first}.{last}{len(self._users)}@{self.domain}.example".lower())
            humans = [u for u in self._user_order if not self._users[u]["is_bot"]] or [self.bot_user_id]
            new_channels = []
            for _ in range(channels):
                name = f"{_TOPICS[len(self._channels) % len(_TOPICS)]}-{len(self._channels) + 1}"
                new_channels.append(self.create_channel(name, creator=self._rng.choice(humans))[0]["id"])
            for channel_id in new_channels:
                for n in range(messages_per_channel):
                    a, b = self._rng.sample(_WORDS, 2)
                    message, _ = self.post_message(channel_id, f"The {a} {b} is ready ({n + 1}).",
                                                   self._rng.choice(humans))
                    if self._rng.random() < 0.1:
                        self.post_message(channel_id, f"Thanks, looking at the {a}.", self._rng.choice(humans),
                                          thread_ts=message["ts"])


def _cursor_ts(cursor: str) -> str:
    digits = decode_cursor(cursor, "next_ts")
    if not (digits.isascii() and digits.isdigit()) or len(digits) <= 6:
        raise SlackError("invalid_cursor")
    return f"{digits[:-6]}.{digits[-6:]}"


def _channel_type(channel: dict[str, Any]) -> str:
    return "group" if channel["is_private"] else "channel"


def _public(channel: dict[str, Any]) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in channel.items() if not k.startswith("_")}


def _copy_user(user: dict[str, Any]) -> dict[str, Any]:
    return dict(user) | {"profile": dict(user["profile"])}
