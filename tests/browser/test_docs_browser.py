"""``/docs`` in Chromium: Redoc renders the gateway's own document under the page's CSP.

The fixture fails the test on any script error or console error (a CSP refusal is one) and
on any request that leaves the gateway.
"""

from __future__ import annotations

from tests.browser.conftest import SCREENSHOTS, Browser


def test_the_docs_page_renders_every_operation_from_local_files(browser: Browser) -> None:
    response = browser.goto("/docs")
    assert response is not None and response.status == 200
    page = browser.page
    page.locator("h2", has_text="Get request & usage metadata for a generation").first.wait_for()
    assert page.locator("h2", has_text="Create a chat completion").count() == 1
    # Redoc drew the schema of the generation object from components.schemas.
    page.get_by_text("provider_responses").first.wait_for(state="attached")
    assert browser.errors == []
    assert f"{browser.served.url}/api/v1/openapi.json" in browser.requests
    assert f"{browser.served.url}/docs/static/redoc.standalone.js" in browser.requests
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "docs.png"))  # the first screen: the page is long
