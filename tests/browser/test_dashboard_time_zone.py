"""The charts in Chromium away from UTC: the pages say their buckets are UTC, so the axes and the
legend are drawn in UTC whatever the browser's time zone (uPlot draws in local time unless told)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.browser.conftest import Browser, Served, watched
from tests.browser.test_dashboard_browser import chat

ZONES = ("America/Los_Angeles", "Asia/Kolkata")  # behind UTC; ahead of it by a half hour
PAGES = ("/dashboard/overview?window=24h", "/dashboard/overview?window=30d", "key")
# uPlot draws tick labels on the canvas: keep what it writes there, in order.
RECORD_CANVAS_TEXT = """
window.__drawn = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
  window.__drawn.push(String(text));
  return fillText.call(this, text, x, y, ...rest);
};
"""


@pytest.fixture(scope="module")
def made(served: Served) -> None:
    client = served.client(served.alice)
    for _ in range(3):
        chat(client)


@contextmanager
def in_zone(chromium_browser: Any, served: Served, zone: str) -> Iterator[Browser]:
    context = chromium_browser.new_context(timezone_id=zone, viewport={"width": 1400, "height": 1000})
    context.add_init_script(RECORD_CANVAS_TEXT)
    try:
        with watched(context.new_page(), served) as session:
            session.sign_in(served.admin)
            offset = session.page.evaluate("new Date().getTimezoneOffset()")
            assert (offset == 0) == (zone == "UTC"), (zone, offset)
            yield session
    finally:
        context.close()


def drawn(browser: Browser, page: str) -> dict[str, Any]:
    """The chart of ``page`` as the browser drew it: its data, the text on its canvas (the axes'
    labels), and the legend's time with the cursor on the newest point."""
    if page == "key":
        browser.goto("/dashboard/keys")
        browser.page.get_by_role("link", name="alice", exact=True).click()
        browser.page.wait_for_url("**/dashboard/keys/*")
    else:
        browser.goto(page)
    figure = browser.page.locator("figure[data-chart]")
    figure.locator(".uplot").wait_for()
    over = figure.locator(".u-over")
    box = over.bounding_box()
    over.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})
    return {
        "data": json.loads(figure.get_attribute("data-chart")),
        "canvas": browser.page.evaluate("window.__drawn"),
        "legend": figure.locator(".u-legend .u-series").first.locator(".u-value").inner_text(),
    }


def uplot_legend_time(epoch: int) -> str:
    """uPlot's legend format for a time, ``{YYYY}-{MM}-{DD} {h}:{mm}{aa}``, of ``epoch`` in UTC."""
    at = datetime.fromtimestamp(epoch, UTC)
    return f"{at:%Y-%m-%d} {at.hour % 12 or 12}:{at:%M}{'am' if at.hour < 12 else 'pm'}"


@pytest.mark.parametrize("zone", ZONES)
def test_the_charts_axes_and_legend_are_in_utc_in_any_time_zone(
    chromium_browser: Any, served: Served, made: None, zone: str
):
    for attempt in range(2):
        with in_zone(chromium_browser, served, "UTC") as utc, in_zone(chromium_browser, served, zone) as away:
            expected = {page: drawn(utc, page) for page in PAGES}
            found = {page: drawn(away, page) for page in PAGES}
        # A new hour between the two may move the 24-hour window: draw both again.
        if attempt == 0 and any(expected[p]["data"] != found[p]["data"] for p in PAGES):
            continue
        break
    for page in PAGES:
        chart = found[page]
        assert chart["data"] == expected[page]["data"], page
        assert chart["legend"] == uplot_legend_time(chart["data"]["x"][-1]), page
        assert chart["canvas"] == expected[page]["canvas"], page
        assert chart["canvas"], page
