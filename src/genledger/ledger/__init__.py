"""The ledger: durable storage of keys and generations, SQLite or PostgreSQL, one code path."""

from genledger.ledger.store import KeyRecord, Ledger

__all__ = ["KeyRecord", "Ledger"]
