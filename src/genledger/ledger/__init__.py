"""The ledger: durable storage of keys and generations, SQLite or PostgreSQL, one code path."""

from genledger.core.keys import KeyExists, KeyRecord, Refusal
from genledger.ledger.engine import MigrationError
from genledger.ledger.store import Ledger

__all__ = ["KeyExists", "KeyRecord", "Ledger", "MigrationError", "Refusal"]
