"""Helpers for the end-to-end browser tests (tests/test_browser.py): the web server on top of a real lab, a
headless Chromium driven with Playwright, a screenshot and an axe-core check of every page a test looks at.

The browser is Debian's Chromium (no browser build can be downloaded here); the front end must have been built
into frontend/dist (bin/frontend, which bin/test runs).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import expect, sync_playwright

from tests.lab import PROJECT, Lab, wait_for
from tests.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
FRONTEND_DIST = PROJECT / "frontend" / "dist"
AXE = PROJECT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "a-long-test-password"  # tests/factories.py
# Where the maintainer looks at the screenshots after a run (the run's data folder is removed when it ends).
SCREENSHOTS_KEPT = Path("/tmp/e2e-screenshots")
SERIOUS = ("serious", "critical")


def screenshot_folder() -> Path:
    return Path(os.environ.get("TESTHUB_DATA_DIR") or tempfile.gettempdir()) / "screenshots"


def with_real_password(user):
    """The web server checks passwords with the project's hashers; the tests' fast MD5 hasher is not among them."""
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])
    user.plain_password = PASSWORD  # what the person types at /login
    return user


def start_web(lab: Lab) -> str:
    """Gunicorn with the project's WSGI app on a free loopback port, stopped with the lab; its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "testhub.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    process = lab._start([*argv, "--timeout", "30", "--access-logfile", "-"], "web")
    base_url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, f"gunicorn ended with {process.returncode}:\n{lab.logs()}"
        try:
            with urllib.request.urlopen(f"{base_url}/login", timeout=2) as response:  # noqa: S310  (our own http URL)
                return response.status == 200 and b"/static/assets/" in response.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    wait_for(answers, timeout=30, interval=0.2, message=f"the web server at {base_url}")
    return base_url


class Visitor:
    """One person's browser tab: goes to pages, and at each step it looks at takes a screenshot and runs axe-core.

    Axe's serious and critical violations are collected per step (assert_accessible() says which rule and node).
    """

    def __init__(self, page, base_url: str, test_name: str):
        self.page = page
        self.base_url = base_url
        self.test_name = test_name
        self.steps = 0
        self.folder = screenshot_folder()
        self.folder.mkdir(parents=True, exist_ok=True)
        SCREENSHOTS_KEPT.mkdir(parents=True, exist_ok=True)
        self.screenshots: list[Path] = []
        self.violations: list[str] = []

    def go(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def settled(self) -> None:
        """At rest: the pointer off the page's controls (axe checks the page, not a hover state), Element Plus's
        drawers and dialogs done sliding in, and the charts (ECharts draws on a canvas, growing for a second)
        drawn to the end."""
        self.page.mouse.move(0, 0)
        self.page.wait_for_function(
            "() => document.getAnimations().every((a) => a.playState !== 'running')", timeout=5_000
        )
        self.page.wait_for_function(
            """() => {
                const drawn = [...document.querySelectorAll("canvas")].map((canvas) => canvas.toDataURL()).join();
                const same = drawn === window.e2eChartsDrawn;
                window.e2eChartsDrawn = drawn;
                return same;
            }""",
            polling=300,
            timeout=5_000,
        )

    def look(self, step: str) -> None:
        """What the person sees now: a screenshot, kept twice, and axe-core's check of the page as it is."""
        self.settled()
        self.steps += 1
        name = f"{self.test_name}-{self.steps:02d}-{step}.png"
        path = self.folder / name
        self.page.screenshot(path=path, full_page=True)
        shutil.copy(path, SCREENSHOTS_KEPT / name)
        self.screenshots.append(SCREENSHOTS_KEPT / name)
        self.check_accessibility(step)

    def check_accessibility(self, step: str) -> None:
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            self.page.add_script_tag(path=str(AXE))
        results = self.page.evaluate("async () => await window.axe.run(document, { resultTypes: ['violations'] })")
        for violation in results["violations"]:
            if violation["impact"] not in SERIOUS:
                continue
            nodes = "; ".join(
                f"{' '.join(node['target']) if isinstance(node['target'][0], str) else json.dumps(node['target'])}"
                f" ({node.get('failureSummary', '').splitlines()[-1].strip() if node.get('failureSummary') else ''})"
                for node in violation["nodes"][:5]
            )
            self.violations.append(
                f"[{step} {self.page.url}] {violation['id']} ({violation['impact']}): {violation['help']} -- {nodes}"
            )

    def assert_accessible(self) -> None:
        assert not self.violations, "axe-core found serious or critical violations:\n" + "\n".join(self.violations)


# Fixtures (tests/test_browser.py takes this module as a plugin) ----------------------------------------------


@pytest.fixture
def stack(lab):
    """All of TestHub on loopback: nodes n1 and n2 with their workers, the control worker and beat, and the web
    server serving the built front end at / and its assets under /static/. Its base URL."""
    if not (FRONTEND_DIST / "index.html").is_file():
        pytest.fail("the front end is not built: run bin/frontend first (bin/test does)")
    collect = subprocess.Popen(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"], cwd=PROJECT, env=lab.env()
    )
    lab.run("n1", "n2")
    assert collect.wait(timeout=120) == 0, "manage.py collectstatic failed"
    return start_web(lab)


@pytest.fixture
def accounts(tester, lab_manager):
    """A tester and a lab manager who can sign in to the web server."""
    return SimpleNamespace(tester=with_real_password(tester), lab_manager=with_real_password(lab_manager))


@pytest.fixture
def browser():
    """Debian's Chromium, headless, for one test.

    Between its calls Playwright's sync API marks its event loop as running, so Django takes the test for async
    code: the database is refused (SynchronousOnlyOperation) until the browser is closed. Whatever a test needs
    in the database is made before (see `visit`); what it checks, it checks on the page.
    """
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def visit(stack, accounts, browser, request, capsys):
    """A fresh browser tab on the stack (English, 1366x900), taking screenshots of what it is shown.

    (The accounts are made before the browser starts: see `browser`.)
    """
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB", accept_downloads=True)
    context.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    visitor = Visitor(context.new_page(), stack, request.node.name)
    yield visitor
    context.close()
    with capsys.disabled():  # shown whatever the outcome, where the maintainer runs the tests
        shots = len(visitor.screenshots)
        print(f"\n{request.node.name}: {shots} screenshots in {visitor.folder}, copied to {SCREENSHOTS_KEPT}")
        for path in visitor.screenshots:
            print(f"  {path.name}")
        for violation in visitor.violations:
            print(f"  accessibility: {violation}")
