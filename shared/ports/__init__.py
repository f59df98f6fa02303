"""Ports: one interface each, with an embedded and an Azure backend (see ``shared.backends``)."""
