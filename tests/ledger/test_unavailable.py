"""Which database errors say the ledger could not be reached (retried, then a 503) and which
say a statement or a row was wrong (a 500 at once): by the driver's own error."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from sqlalchemy import exc as sa

from genledger.ledger.unavailable import LEDGER_ERRORS, unreachable


def wrapped(orig: Exception, *, invalidated: bool = False) -> sa.DBAPIError:
    return sa.OperationalError("INSERT ...", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("database is locked"),
        sqlite3.OperationalError("disk I/O error"),
        sqlite3.OperationalError("unable to open database file"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.ObjectNotInPrerequisiteStateError('database "x" is not currently accepting connections'),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionRefusedError(111, "Connection refused"),
        sa.TimeoutError("QueuePool limit of size 10 overflow 20 reached"),
        wrapped(sqlite3.OperationalError("database is locked")),
        wrapped(asyncpg.TooManyConnectionsError("too many clients")),
        wrapped(ValueError("whatever the driver said"), invalidated=True),
    ],
    ids=repr,
)
def test_an_unreachable_database_says_so(error: Exception):
    assert unreachable(error)
    # What reaches a route is SQLAlchemy's, sqlite3's or the socket's (the writer turns its
    # asyncpg errors into LedgerUnavailable first): the edge maps those classes.
    if not isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError):
        assert isinstance(error, LEDGER_ERRORS)


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("no such table: generations"),
        sqlite3.IntegrityError("UNIQUE constraint failed: generations.id"),
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.NumericValueOutOfRangeError("value out of int64 range"),
        wrapped(sqlite3.OperationalError("no such column: x")),
        ValueError("not a database error"),
    ],
    ids=repr,
)
def test_a_wrong_statement_or_row_is_not_unreachable(error: Exception):
    assert not unreachable(error)
