"""A query parameter given twice is a 400 naming it: a read that kept one of its values would
answer for a filter the caller did not ask for (``model=a&model=b`` read only ``b``)."""

from __future__ import annotations

import pytest

from tests.inprocess.conftest import App


@pytest.mark.parametrize(
    ("path", "query", "param"),
    [
        ("/api/v1/generations", "model=acme/a&model=acme/b", "model"),
        ("/api/v1/generations", "metadata[team]=red&metadata[team]=blue", "metadata[team]"),
        ("/api/v1/generations", "limit=5&limit=6", "limit"),
        ("/api/v1/generations/export", "streamed=true&streamed=false", "streamed"),
        ("/api/v1/activity", "group_by=day&group_by=model", "group_by"),
        ("/api/v1/activity", "date=2026-11-24&date=2026-11-25", "date"),
        ("/api/v1/generation", "id=gen-1&id=gen-2", "id"),
        ("/api/v1/models", "limit=1&limit=2", "limit"),
    ],
)
async def test_a_parameter_given_twice_is_a_400_naming_it(app: App, path: str, query: str, param: str):
    response = await app.http.get(f"{path}?{query}", headers={"Authorization": f"Bearer {app.admin}"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["metadata"]["param"] == param


async def test_distinct_metadata_keys_are_still_taken_together(app: App):
    response = await app.http.get(
        "/api/v1/generations?metadata[team]=red&metadata[env]=prod",
        headers={"Authorization": f"Bearer {app.admin}"},
    )
    assert response.status_code == 200, response.text
