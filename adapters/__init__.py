"""Provider adapters: a typed spec plus a few hooks per provider, on one shared framework."""
