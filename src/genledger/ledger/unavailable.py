"""When the ledger's database cannot be reached: the errors that say so, whichever driver.

They are not the request's fault and they pass: a server restarting, its connections all
taken ("too many clients"), a lock held a moment too long. The writer retries a batch that
meets one (``writer.py``), and a request that still meets one is answered 503 with
``Retry-After``, never 500 (``api/errors.on_ledger_error``).
"""

from __future__ import annotations

import sqlite3
import sys

from sqlalchemy import exc as sa

LEDGER_ERRORS: tuple[type[Exception], ...] = (sa.DBAPIError, sa.TimeoutError, sqlite3.Error, ConnectionError)
"""Every class an unreachable database raises through, whichever path: :func:`unreachable`
tells which of their instances say so."""

# SQLite's words for a database it cannot use now (another process holds it, the disk failed),
# not for a statement it cannot run ("no such table").
_SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "disk i/o error", "unable to open")


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (worth a retry), not that a
    statement or a row was wrong.

    SQLAlchemy's errors are judged by the driver's error they wrap (and by whether SQLAlchemy
    found the connection gone). The PostgreSQL errors are asyncpg's, looked up only once it
    is loaded (a SQLite gateway never imports it): class 08 (the connection), 53 ("too many
    clients", out of memory or disk), 57 (the server shutting down or not yet accepting) and
    55 (a database not accepting connections, a lock not available).
    """
    if isinstance(exc, sa.DBAPIError):
        return exc.connection_invalidated or (exc.orig is not None and unreachable(exc.orig))
    if isinstance(exc, sa.TimeoutError | sa.DisconnectionError | ConnectionError):
        return True  # the pool had no connection to give in time; a connection lost
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc).lower().startswith(_SQLITE_UNAVAILABLE)
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is None:
        return False
    pg_classes = (
        asyncpg.PostgresConnectionError,
        asyncpg.InsufficientResourcesError,
        asyncpg.OperatorInterventionError,
        asyncpg.ObjectNotInPrerequisiteStateError,
        asyncpg.InterfaceError,
    )
    if isinstance(exc, pg_classes):
        return True
    # SQLAlchemy's asyncpg adapter wraps asyncpg's error in its own DB-API class, the original
    # as the cause.
    cause = exc.__cause__
    return cause is not None and cause is not exc and isinstance(cause, pg_classes)
