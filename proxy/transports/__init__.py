"""Transports: how a client reaches regogate (stdio today)."""
