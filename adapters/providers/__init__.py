"""One module per provider: a ProviderSpec plus the few hooks it needs."""
