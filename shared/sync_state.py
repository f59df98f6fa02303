"""A stream's sync position: its incremental state, and the cursor trail of one run.

Re-exported by :mod:`shared.domain`, where the documents that hold them live.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field


class IncrementalState(BaseModel):
    """Where a stream's next run starts: the provider's delta position.

    Attributes:
        watermark: High-water mark of the last completed run (e.g. ``updated_at``).
        sync_token: A provider delta token (Google Calendar ``nextSyncToken``).
        start_page_token: A change-feed position (Google Drive ``newStartPageToken``).
        full_resync: The next run must list everything (an expired token, ``410 Gone``).

    A run starts from the stream's committed state and collects a candidate page by page;
    the candidate is committed only when the run's last page has been stored.
    """

    watermark: str | None = None
    sync_token: str | None = None
    start_page_token: str | None = None
    full_resync: bool = False

    def advanced(self, watermark: str | None = None, **tokens: str | None) -> IncrementalState:
        """A copy moved forward by one page: the later watermark, any new token."""
        update: dict[str, Any] = {k: v for k, v in tokens.items() if v is not None}
        if watermark is not None and (self.watermark is None or watermark > self.watermark):
            update["watermark"] = watermark
        return self.model_copy(update=update)

    @property
    def is_empty(self) -> bool:
        """No delta position at all: a run from here lists everything."""
        return self.watermark is None and self.sync_token is None and self.start_page_token is None

    @property
    def lists_everything(self) -> bool:
        """A run starting here is a full listing (an empty state, or a full resync was asked for)."""
        return self.full_resync or self.is_empty

    def merged(self, page_state: IncrementalState) -> IncrementalState:
        """This run's candidate moved on by one page's candidate ``page_state``.

        The adapter returns the state it was given advanced by one page; merging keeps the
        latest watermark of the whole run and takes any token the page carries (Calendar's
        ``nextSyncToken`` and Drive's ``newStartPageToken`` come on the last page). The
        candidate never asks for another full resync: the run is doing it.
        """
        return self.advanced(
            page_state.watermark, sync_token=page_state.sync_token, start_page_token=page_state.start_page_token
        ).model_copy(update={"full_resync": False})


RECENT_CURSORS = 100


class CursorTrail(BaseModel):
    """The page cursors a run has followed, to stop a pagination cycle of any length.

    ``recent`` keeps the last :data:`RECENT_CURSORS` cursor digests (``digest@page``), which
    catches short cycles at their first repeat. Longer cycles are caught by Brent's method
    on one saved cursor (``mark``) whose distance doubles (``power``): any cycle is found
    within a few times its length, in constant space. The run's page ceiling bounds the rest.
    """

    recent: list[str] = Field(default_factory=list)
    mark: str | None = None
    mark_page: int = 0
    power: int = 1
    steps: int = 0

    def follow(self, cursor: str, page: int) -> int | None:
        """Record that ``page`` is fetched with ``cursor``; the earlier page it repeats, or None."""
        digest = hashlib.blake2b(cursor.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
        for entry in self.recent:
            seen, _, at = entry.partition("@")
            if seen == digest:
                return int(at)
        if digest == self.mark:
            return self.mark_page
        self.recent = [*self.recent[-(RECENT_CURSORS - 1) :], f"{digest}@{page}"]
        self.steps += 1
        if self.steps >= self.power:
            self.mark, self.mark_page, self.power, self.steps = digest, page, self.power * 2, 0
        return None
