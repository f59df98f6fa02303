"""Credentials: typed models, how they are stored, the fenced refresh, OAuth connect and rotation.

- :mod:`shared.credentials.models`: the nine credential types (a discriminated union) and
  their storage form (one secret, tags, ``expires_on``, Key Vault-valid stable names).
- :mod:`shared.credentials.applied`: what an adapter sees of a credential on a request.
- :mod:`shared.credentials.lease`: the fenced lease that makes a refresh single-writer.
- :mod:`shared.credentials.exchange`: token requests at the provider (refresh, client
  credentials, JWT bearer, GitHub App installation tokens, code exchange, revocation).
- :mod:`shared.credentials.refresh`: lease ▸ re-read ▸ refresh if still due ▸ write ▸ release.
- :mod:`shared.credentials.oauth`: the connect / callback / disconnect flow.
- :mod:`shared.credentials.rotation`: rotation policies of static secrets and expiry notices.
"""
