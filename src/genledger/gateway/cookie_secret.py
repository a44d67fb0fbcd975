"""The secret that signs the dashboard's session cookies: configured, or kept beside SQLite.

``dashboard_secret`` (``GENLEDGER_DASHBOARD_SECRET``) wins. Without it, a SQLite ledger keeps
a generated secret in ``<file>.dashboard-secret`` (mode 0600), so sessions outlive a restart
and every instance on that file shares them. Otherwise (PostgreSQL, an in-memory SQLite) the
secret is generated per process: sessions end when it stops, and instances do not share them.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from genledger.config import Settings

SECRET_BYTES = 32
log = logging.getLogger("genledger")


def secret_file(database_url: str) -> Path | None:
    """Where a SQLite ledger's generated secret lives; None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).with_name(Path(url.database).name + ".dashboard-secret")


def cookie_secret(settings: Settings) -> bytes:
    if settings.dashboard_secret is not None:
        return settings.dashboard_secret.get_secret_value().encode()
    path = secret_file(settings.database_url)
    if path is None:
        log.warning(
            "dashboard_secret is not set: dashboard sessions end when this process stops "
            "(set GENLEDGER_DASHBOARD_SECRET, the same on every instance)"
        )
        return secrets.token_bytes(SECRET_BYTES)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    fresh = secrets.token_hex(SECRET_BYTES).encode()
    try:
        # O_EXCL: of instances starting together on one file, the first writes, the others read.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as file:
        file.write(fresh)
    return fresh
