"""A real headless Chromium driven through Selenium: Debian's `chromium` and `chromium-driver`.

Both are installed by `make install` and `.ci/run` (apt, as root). Without them the browser
tests are skipped, saying what to install; with them nothing is downloaded (the driver's
path is given, so Selenium Manager never runs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

WINDOW = (1440, 900)


def _found(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if path:
            return path
    return None


def browser_binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver), or None when either is missing."""
    chromium = os.environ.get("CALLMATCH_CHROMIUM") or _found("chromium", "chromium-browser")
    driver = os.environ.get("CALLMATCH_CHROMEDRIVER") or _found("chromedriver")
    return (chromium, driver) if chromium and driver else None


def new_driver() -> WebDriver:
    """A headless Chromium at a laptop's window size; the caller quits it."""
    found = browser_binaries()
    assert found is not None
    chromium, driver = found
    options = Options()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.fixture(scope="module")
def chromium() -> Iterator[WebDriver]:
    """One browser for a module's tests (each test signs in as it needs)."""
    if browser_binaries() is None:
        if os.environ.get("CALLMATCH_SCREENSHOTS"):
            pytest.fail(
                "`make screenshots` needs chromium and chromedriver: apt-get install chromium chromium-driver"
            )
        pytest.skip(
            "chromium and chromedriver are not installed: run `make install` as root, or"
            " `apt-get install chromium chromium-driver` (Debian) to run the browser tests"
        )
    driver = new_driver()
    try:
        yield driver
    finally:
        driver.quit()
