"""Browser tests: Debian's Chromium, driven by Playwright, against ``genledger serve`` on 127.0.0.1.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``.ci/run``
installs Debian's package when it is missing). Without it these tests skip, or fail under
``GENLEDGER_REQUIRE_SERVICES=1``. The gateway is a real ``genledger serve`` process on a
SQLite ledger with a fake upstream; generations are made with the official ``openai`` client.
Every request a page makes is recorded, and any that leaves the gateway fails the test.
Screenshots go to ``test-artifacts/dashboard/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes import FakeOpenAIInThread
from tests.gateway import create_key
from tests.services import free_port, unavailable

CHROMIUM = os.environ.get("GENLEDGER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parents[2] / "test-artifacts" / "dashboard"
MODEL = "acme/fast-chat"
OTHER_MODEL = "acme/other-chat"
START_DEADLINE_S = 60.0


@dataclass
class Served:
    """A running ``genledger serve`` and the keys made for it."""

    url: str
    database_url: str
    admin: str
    alice: str
    bob: str
    log: Path
    secrets: list[str] = field(default_factory=list)

    def client(self, secret: str) -> openai.OpenAI:
        return openai.OpenAI(api_key=secret, base_url=f"{self.url}/api/v1", max_retries=0, timeout=30)


def _config(folder: Path, upstream_url: str, database_url: str) -> Path:
    prices = 'prompt_price = "0.15"\ncompletion_price = "0.60"\ncached_prompt_price = "0.075"\n'
    path = folder / "genledger.toml"
    path.write_text(
        f'database_url = "{database_url}"\n\n'
        f'[providers.fake]\nkind = "openai"\nbase_url = "{upstream_url}"\ndisplay_name = "FakeAI"\n\n'
        f'[models."{MODEL}"]\nprovider = "fake"\nupstream_model = "fast"\n{prices}\n'
        f'[models."{OTHER_MODEL}"]\nprovider = "fake"\nupstream_model = "other"\n'
        'prompt_price = "1"\ncompletion_price = "2"\n'
    )
    return path


@pytest.fixture(scope="session")
def chromium() -> str:
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM


@contextmanager
def serve(folder: Path, seed: Callable[[str], None] | None = None) -> Iterator[Served]:
    """``genledger serve`` on a new SQLite ledger in ``folder`` with an admin, alice and bob;
    ``seed(database_url)`` fills the ledger before the gateway starts."""
    database_url = f"sqlite:///{folder}/genledger.db"
    with FakeOpenAIInThread() as upstream:
        config = _config(folder, upstream.api_url, database_url)
        admin = create_key(database_url, "admin", management=True)
        alice = create_key(database_url, "alice")
        bob = create_key(database_url, "bob")
        if seed is not None:
            seed(database_url)
        port = free_port()
        log = folder / "gateway.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENLEDGER_")}
        with log.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "genledger", "serve", "--config", str(config), "--port", str(port)],
                cwd=folder,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process, log)
            yield Served(url, database_url, admin, alice, bob, log, [admin, alice, bob])
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def served(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("dashboard")) as found:
        yield found


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"genledger serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"genledger serve did not answer within {START_DEADLINE_S} s: {log.read_text()}")


@pytest.fixture(scope="module")
def browser_context(chromium: str, served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Started after the gateway: Playwright's sync API holds an event loop on this thread, so
    nothing after it may call ``asyncio.run`` (as ``create_key`` does)."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


@dataclass
class Browser:
    """One test's page, with every request it made and every script error it saw."""

    page: Any
    served: Served
    requests: list[str]
    errors: list[str]

    def goto(self, path: str) -> Any:
        return self.page.goto(f"{self.served.url}{path}")

    def sign_in(self, secret: str) -> None:
        self.goto("/dashboard/sign-in")
        self.page.get_by_label("Key").fill(secret)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/dashboard/overview")

    def source_has_no_secret(self) -> None:
        html = self.page.content()
        for secret in self.served.secrets:
            assert secret not in html
        assert all(secret not in url for url in self.requests for secret in self.served.secrets)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def chromium_browser(chromium: str, served: Served) -> Iterator[Any]:
    """Chromium without a profile, for tests that open contexts of their own (a time zone, say).
    Like ``browser_context``, started after the gateway; a module uses one or the other."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def watched(page: Any, served: Served) -> Iterator[Browser]:
    """``page`` with every request and script error recorded; at the end, none may have left
    the gateway and none may have failed."""
    page.set_default_timeout(30_000)
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    # A 404 page the test asked for is not an error; a script, style or chart that fails is.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on(
        "response",
        lambda response: (
            errors.append(f"{response.status} {response.url}")
            if response.status >= 400 and response.request.resource_type != "document"
            else None
        ),
    )
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}") or dialog.dismiss())
    session = Browser(page, served, requests, errors)
    yield session
    page.close()
    # No request from the pages leaves the gateway: no CDN, no font, no telemetry. (A blob: URL
    # of the gateway's origin is the page's own memory: /docs runs its search worker from one.)
    inside = (f"{served.url}/", f"blob:{served.url}/", "data:")
    outside = [url for url in requests if not url.startswith(inside)]
    assert not outside, outside
    assert not errors, errors


@pytest.fixture
def browser(browser_context: Any, served: Served) -> Iterator[Browser]:
    browser_context.clear_cookies()
    with watched(browser_context.new_page(), served) as session:
        yield session
