"""A real headless Chromium (Debian's chromium + chromium-driver) driven by selenium.

Browsers cannot be downloaded here: selenium is pointed at /usr/bin/chromium
and /usr/bin/chromedriver (scripts/test installs both). The flags keep
Chromium off the network it would otherwise try to reach at start (this
machine's network is closed), and each browser gets a fresh profile.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="dialer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    # The page's console, for a failing test to show.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, predicate: Callable[[Any], Any], timeout: float = 10.0) -> Any:
    """``predicate(driver)`` once truthy; on a timeout the error shows the page's console
    and text, what one needs to see why."""
    try:
        return WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.05,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(predicate)
    except TimeoutException:
        console = [entry["message"] for entry in driver.get_log("browser")]
        text = driver.find_element(By.TAG_NAME, "body").text
        driver.save_screenshot(str(Path(tempfile.gettempdir()) / "dialer-browser-timeout.png"))
        raise AssertionError(
            f"timed out after {timeout} s; console: {console}; page: {text[:2000]}; "
            f"state: {driver.execute_script('return document.body.dataset')}"
        ) from None


def log_in(driver: Any, url: str, username: str, password: str) -> None:
    driver.get(url)
    form = wait(driver, lambda d: d.find_element(By.ID, "login"))
    form.find_element(By.NAME, "username").send_keys(username)
    form.find_element(By.NAME, "password").send_keys(password)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, lambda d: not d.find_element(By.ID, "login").is_displayed())


def state_line(driver: Any) -> str:
    return str(driver.find_element(By.ID, "state").get_attribute("data-state"))


def screenshot(driver: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
