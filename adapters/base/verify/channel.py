"""Resource-change notifications authenticated by the stored channel id, channel token and resource id.

The body is empty; everything is in headers. All three values are compared in constant time
(each comparison always runs, so timing does not say which one failed). A handshake state
(``sync``) answers with the configured status and no work.
"""

from __future__ import annotations

from adapters.base.verify.config import ChannelTokenConfig
from adapters.base.verify.model import (
    MALFORMED,
    Answer,
    Delivery,
    Signed,
    Verdict,
    VerifiedEvent,
    WebhookKey,
    equal,
    refuse,
)

MAX_HEADER_VALUE = 512


class ChannelTokenStrategy:
    """Channel id + token + resource id in headers (see :class:`ChannelTokenConfig`)."""

    name = "channel_token"

    def __init__(self, config: ChannelTokenConfig) -> None:
        self.config = config

    def verify(self, delivery: Delivery, key: WebhookKey) -> Verdict:
        """Match the three stored values; a handshake state needs no stored resource id yet."""
        cfg = self.config
        if key.secret is None or not key.channel_id:
            missing = "channel token" if key.secret is None else "channel id"
            return refuse(f"no {missing} is stored for this channel", "no_key", scheme=self.name)
        values: dict[str, str] = {}
        for name in (cfg.channel_id_header, cfg.token_header, cfg.resource_id_header, cfg.state_header):
            value = delivery.header(name)
            if value is None or not value.strip():
                return refuse(f"missing {name} header", "missing_header", scheme=self.name)
            if len(value) > MAX_HEADER_VALUE:
                return refuse(f"{name} is longer than {MAX_HEADER_VALUE} characters", "bad_token", scheme=self.name)
            values[name] = value.strip()
        state = values[cfg.state_header]
        handshake = state in cfg.handshake_states
        id_ok = equal(values[cfg.channel_id_header], key.channel_id)
        token_ok = equal(values[cfg.token_header], key.secret.get_secret_value())
        if key.resource_id:
            resource_ok = equal(values[cfg.resource_id_header], key.resource_id)
        else:
            resource_ok = handshake  # the first message may beat the stored watch response
        if not (id_ok & token_ok & resource_ok):
            if not key.resource_id and not handshake:
                return refuse("no resource id is stored for this channel", "no_key", scheme=self.name)
            return refuse(
                f"{cfg.channel_id_header}, {cfg.token_header} and {cfg.resource_id_header} do not match the stored "
                "channel",
                "bad_token",
                scheme=self.name,
            )
        if handshake:
            return Verdict(
                True,
                f"channel authenticated; state {state!r} is a handshake: answer {cfg.handshake_status}, no work",
                code="handshake",
                handshake=True,
                answer=Answer(cfg.handshake_status),
                scheme=self.name,
            )
        number = (delivery.header(cfg.message_number_header) or "").strip()
        if not number.isascii() or not number.isdigit() or len(number) > 20:
            reason = f"channel authenticated, but {cfg.message_number_header} is missing or not a number"
            return refuse(reason, "invalid_body", MALFORMED, self.name, authentic=True)
        data: dict[str, object] = {
            "channel_id": values[cfg.channel_id_header],
            "resource_id": values[cfg.resource_id_header],
            "state": state,
            "message_number": int(number),
        }
        for name in cfg.extra_headers:
            extra = delivery.header(name)
            if extra is not None:
                data[name.lower()] = extra[:MAX_HEADER_VALUE * 4]
        event = VerifiedEvent(f"{values[cfg.channel_id_header]}:{number}", state, data)
        return Verdict(True, "channel id, token and resource id match", events=(event,), scheme=self.name)

    def sign(
        self,
        body: bytes,
        key: WebhookKey,
        *,
        now: float,
        delivery_id: str | None = None,
        event_type: str | None = None,
    ) -> Signed:
        """The channel headers: ``event_type`` is the resource state, ``delivery_id`` the message number."""
        cfg = self.config
        if key.secret is None or not key.channel_id or not key.resource_id:
            raise ValueError("a channel notification needs the channel id, token and resource id")
        return Signed(
            {
                cfg.channel_id_header: key.channel_id,
                cfg.token_header: key.secret.get_secret_value(),
                cfg.resource_id_header: key.resource_id,
                cfg.state_header: event_type or "update",
                cfg.message_number_header: delivery_id or "1",
            },
            body,
        )
