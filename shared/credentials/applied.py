"""What an adapter sees of a credential on a request: the value, its type, and how to renew it.

:class:`AppliedCredential` is a :class:`~pydantic.SecretStr` (it never prints), so every place
that carries a credential (``Connection.credential``, ``RequestContext.credential``) keeps its
type. It adds the credential's ``type`` (the auth strategy is chosen from it), where an API key
goes, and :meth:`AppliedCredential.refreshed`: the HTTP pipeline's auth policy calls it once when
the provider rejects the credential (a 401 during a sync or push), and retries the request with
what it returns - after the fenced refresh stored the new version.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

Renew = Callable[[SecretStr], SecretStr | None]


class AppliedCredential(SecretStr):
    """A credential value with its type and a renew hook.

    Args:
        value: What goes on the request (a token, ``user:password``, an API key).
        credential_type: The credential's ``type`` (see :mod:`shared.credentials.models`).
        placement: For an API key, ``header`` or ``query`` (``None``: as the spec says).
        name: For an API key, the header or query parameter name (``None``: as the spec says).
        renew: Called with the rejected value; returns a fresh credential or ``None``.
    """

    def __init__(
        self,
        value: str,
        *,
        credential_type: str,
        placement: str | None = None,
        name: str | None = None,
        renew: Renew | None = None,
    ) -> None:
        super().__init__(value)
        self.credential_type = credential_type
        self.placement = placement
        self.name = name
        self._renew = renew

    def refreshed(self) -> SecretStr | None:
        """A fresh credential after the provider rejected this one (``None``: none to be had)."""
        return self._renew(self) if self._renew is not None else None
