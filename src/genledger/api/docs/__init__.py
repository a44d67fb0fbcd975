"""The human docs page (``/docs``): Redoc, served from here, rendering ``/api/v1/openapi.json``.

No CDN: the page, its script and its stylesheet are files of this package (``static/``,
vendored from the npm registry; see ``static/README.md``).
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "docs.html"
STATIC_PREFIX = "/docs/static"

CONTENT_SECURITY_POLICY = (
    # Redoc's styled-components write <style> elements, and its search runs in a worker it
    # makes from a blob: URL; scripts come from this origin only, never inline.
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
