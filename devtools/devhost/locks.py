"""Automatic lock renewal for running handlers, like the Service Bus extension's.

While a function runs, the extension renews its message's lock before it expires, for up to
``maxAutoLockRenewalDuration`` from when the message was received; after that the lock is
left to expire and Service Bus delivers the message again. :class:`LockRenewer` does the same
on the embedded queue: one thread per pump renews each watched lock when half of the lock
duration is left, until the handler ends (:meth:`LockRenewer.forget`) or the renewal budget is
spent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.ports.queue import LockLost, ReceivedMessage, ReceivingWorkQueue

__all__ = ["LockRenewer"]

_MIN_LOCK_SECONDS = 0.2


@dataclass
class _Watched:
    message_id: str
    lock_seconds: float
    renew_at: float
    renew_until: float
    renewals: int = 0


class LockRenewer:
    """Keeps the locks of running handlers' messages alive.

    Args:
        queue: The queue holding the locks.
        queue_name: Its name (or dead-letter path).
        max_renewal_seconds: Renew for at most this long after a message was received (0: never).
        log: Logger.
        clock: Seconds since the epoch (the queue's lock times are wall-clock times).
    """

    def __init__(
        self,
        queue: ReceivingWorkQueue,
        queue_name: str,
        max_renewal_seconds: float,
        log: logging.Logger,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._queue_name = queue_name
        self._max = max(0.0, max_renewal_seconds)
        self._log = log
        self._clock = clock
        self._cond = threading.Condition()
        self._watched: dict[str, _Watched] = {}
        self._stopped = True
        self._thread: threading.Thread | None = None
        self.renewals = 0
        """Locks renewed since start (for tests and logs)."""

    def start(self) -> None:
        """Start the renewal thread (nothing to do when renewal is off)."""
        if self._max <= 0:
            return
        with self._cond:
            self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=f"devhost-renew-{self._queue_name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (locks still held simply expire)."""
        with self._cond:
            self._stopped = True
            self._watched.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def watch(self, message: ReceivedMessage) -> None:
        """Renew ``message``'s lock while its handler runs."""
        if self._max <= 0:
            return
        now = self._clock()
        lock_seconds = max(_MIN_LOCK_SECONDS, message.locked_until.timestamp() - now)
        with self._cond:
            self._watched[message.lock_token] = _Watched(
                message_id=message.message_id,
                lock_seconds=lock_seconds,
                renew_at=now + lock_seconds / 2,
                renew_until=now + self._max,
            )
            self._cond.notify_all()

    def forget(self, lock_token: str) -> None:
        """The handler ended: stop renewing this lock."""
        with self._cond:
            self._watched.pop(lock_token, None)

    def _due(self) -> list[tuple[str, _Watched]]:
        """Wait until a lock needs renewing (or stop); return those that do."""
        with self._cond:
            while not self._stopped:
                now = self._clock()
                for token, watched in list(self._watched.items()):
                    if now >= watched.renew_until:
                        del self._watched[token]  # the renewal budget is spent: let the lock run out
                        self._log.warning(
                            "message %s on %r: lock no longer renewed after %.0f s (maxAutoLockRenewalDuration);"
                            " it will be delivered again when the lock expires",
                            watched.message_id,
                            self._queue_name,
                            self._max,
                        )
                due = [(t, w) for t, w in self._watched.items() if now >= w.renew_at]
                if due:
                    return due
                next_at = min((w.renew_at for w in self._watched.values()), default=now + 60.0)
                self._cond.wait(max(0.01, next_at - now))
            return []

    def _loop(self) -> None:
        while True:
            due = self._due()
            if not due:
                return
            for token, watched in due:
                renewed = False
                try:
                    until = self._queue.renew_lock(self._queue_name, token).timestamp()
                    renewed = True
                except LockLost:
                    self.forget(token)  # settled meanwhile, or the lock was already lost
                    continue
                except Exception:
                    self._log.exception("renewing the lock of message %s failed", watched.message_id)
                    until = self._clock() + watched.lock_seconds * 0.75  # try again in a quarter lock
                with self._cond:
                    if token in self._watched:
                        watched.renew_at = until - watched.lock_seconds / 2
                    if renewed:
                        watched.renewals += 1
                        self.renewals += 1
