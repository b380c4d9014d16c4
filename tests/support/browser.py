"""Shared headless-Chromium set-up for browser tests: Debian's ``chromium`` and ``chromium-driver`` only.

* Installs both with apt-get when they are missing and we run as root (CI and the dev machines do); otherwise the
  caller skips with the printed reason. Nothing is ever downloaded by a driver manager: Selenium is handed
  /usr/bin/chromedriver and /usr/bin/chromium explicitly, and Selenium Manager is told to stay offline.
* Launch flags keep the browser off the network (no QUIC, no background, component-update or sync traffic) and a
  fresh ``--user-data-dir`` per session keeps runs independent.
* Screenshots go to ``artifacts_dir(name)``: $OPTOUT_ARTIFACTS/<name> if set, else <tmp>/optout-artifacts/<name>.

``Browser`` and the module-scoped ``browser`` fixture drive the same binaries over plain WebDriver HTTP (the
report and summary tests); the service's browser test uses Selenium.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def install_chromium() -> str | None:
    """Install Debian's chromium and chromedriver if missing; the reason to skip, or None when ready."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{CHROMIUM} / {CHROMEDRIVER} missing and not root: apt-get install chromium chromium-driver"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium", "chromium-driver"]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:  # stale package lists: update once, then try again
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0 or not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"apt-get install chromium chromium-driver failed: {done.stderr.strip()[-300:]}"
    return None


def require_chromium(what: str) -> None:
    """Install chromium (see install_chromium) or skip ``what`` with the reason printed."""
    import pytest

    reason = install_chromium()
    if reason:
        print(f"skipping {what}: {reason}")
        pytest.skip(reason)


def artifacts_dir(name: str) -> Path:
    base = os.environ.get("OPTOUT_ARTIFACTS") or os.path.join(tempfile.gettempdir(), "optout-artifacts")
    path = Path(base) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def selenium_chrome(profile: Path, downloads: Path | None = None, size: tuple[int, int] = (1300, 1000)) -> Any:
    """A Selenium Chrome session on Debian's binaries (raises ImportError without selenium: callers skip)."""
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: Selenium Manager must never fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if downloads is not None:
        options.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(downloads),
                "download.prompt_for_download": False,
                "safebrowsing.enabled": False,
            },
        )
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    if downloads is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


# Words (runs of letters and digits) that a page's layout split over two lines, in the elements matching the
# selector given as the script's first argument: a table cell must wrap between words or at punctuation, never
# inside one ("evide|nce", "fetched_not_stor|ed"). Hidden text has no boxes and is not counted.
BROKEN_WORDS_JS = """
const broken = [];
for (const root of document.querySelectorAll(arguments[0])) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const re = /[\\p{L}\\p{N}]{2,}/gu;
    let m;
    while ((m = re.exec(node.textContent))) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => r.top);
      if (tops.length > 1 && Math.max(...tops) - Math.min(...tops) > 2) broken.push(m[0]);
    }
  }
}
return broken;
"""


class Browser:
    """The few WebDriver commands these tests need."""

    def __init__(self, base: str, session: str) -> None:
        self.base = f"{base}/session/{session}"

    def cmd(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        reply = requests.request(method, self.base + path, json=body, timeout=120)
        value = reply.json().get("value")
        if reply.status_code != 200:
            raise AssertionError(f"webdriver {path}: {value}")
        return value

    def open(self, path: Path) -> float:
        started = time.monotonic()
        self.cmd("POST", "/url", {"url": path.resolve().as_uri()})
        return time.monotonic() - started

    def js(self, script: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))
        print(f"screenshot: {path}")
        return path

    def console_errors(self) -> list[str]:
        entries = self.cmd("POST", "/se/log", {"type": "browser"}) or []
        return [e["message"] for e in entries if e.get("level") == "SEVERE"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    require_chromium("the browser tests")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = subprocess.Popen(
        [str(CHROMEDRIVER), f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/status", timeout=2).json()["value"]["ready"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.1)
        profile = tmp_path_factory.mktemp("chromium-profile")
        caps = {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": str(CHROMIUM), "args": [*FLAGS, f"--user-data-dir={profile}"]},
        }
        reply = requests.post(base + "/session", json={"capabilities": {"alwaysMatch": caps}}, timeout=120).json()
        session = reply["value"]["sessionId"]
        browser = Browser(base, session)
        browser.cmd("POST", "/window/rect", {"width": 1300, "height": 1000})
        yield browser
        requests.delete(f"{base}/session/{session}", timeout=30)
    finally:
        driver.terminate()
        driver.wait(timeout=10)
