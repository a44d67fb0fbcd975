"""The generations page's query string: the list API's own filters, so a view can be shared.

An HTML form sends every field, empty or not, and cannot name a field ``metadata[team]``;
:func:`canonical` drops the empty ones and turns ``metadata_key``/``metadata_value`` into
``metadata[key]=value``, trims the spaces a text field may bring around an instant, and the
page redirects to that URL. What remains is parsed by the list API's grammar
(``parse_list_query``), so a bad value is the same 400 naming it. The form shows the filters
as parsed (times in UTC, ``Z``), so that sending it back names the same ones.
"""

from __future__ import annotations

from urllib.parse import urlencode

from genledger.errors import BadRequest

FORM_ONLY = ("metadata_key", "metadata_value")
INSTANTS = ("created_after", "created_before")


def canonical(pairs: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """The query string without the form's artefacts; None when it has none already."""
    changed = False
    kept: list[tuple[str, str]] = []
    form = {name: value for name, value in pairs if name in FORM_ONLY}
    for name, value in pairs:
        text = value.strip() if name in INSTANTS else value
        if name in FORM_ONLY or not text:
            changed = True
        else:
            changed = changed or text != value
            kept.append((name, text))
    key, value = form.get("metadata_key", "").strip(), form.get("metadata_value", "")
    if key and not value:
        raise BadRequest("'metadata_value' is needed with metadata_key", metadata={"param": "metadata_value"})
    if value and not key:
        raise BadRequest("'metadata_key' is needed with metadata_value", metadata={"param": "metadata_key"})
    if key:  # in place of the same key's pair, kept in the form's hidden fields
        name = f"metadata[{key}]"
        kept = [(n, v) for n, v in kept if n != name]
        kept.append((name, value))
    return kept if changed else None


def without(pairs: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    return [(name, value) for name, value in pairs if name not in names]


def encode(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs)
