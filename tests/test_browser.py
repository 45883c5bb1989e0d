"""The live page of `python -m infer serve` in a real browser: Debian's chromium, headless, with its fake camera
(--use-fake-device-for-media-stream --use-fake-ui-for-media-stream), driven by Playwright.

Checks that translated frames arrive and the frames/s counter moves, that a noise model's page
draws sample grids, and that closing the page frees the server's per-connection state. Skipped,
with the reason, where no chromium is installed or it cannot start.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from infer.server.process import ServerProcess

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--no-sandbox",
                 "--disable-gpu"]


def _chromium() -> str:
    path = os.environ.get("GANRT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no chromium here (apt-get install chromium, or set GANRT_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except sync_api.Error as e:
            pytest.skip(f"{executable} cannot start here: {str(e).splitlines()[0]}")
        yield chromium
        chromium.close()


def _streams_open(server: ServerProcess) -> float:
    line = next(x for x in httpx.get(server.url + "/metrics").text.splitlines()
                if x.startswith("ganrt_stream_connections "))
    return float(line.split()[-1])


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _frames(page: Any) -> int:
    # Read from the DOM, not with page.evaluate-style string eval: the page's CSP forbids eval.
    return int(page.get_attribute("body", "data-frames") or 0)


def test_webcam_frames_are_translated_and_closing_frees_the_stream(browser: Any, cyclegan_artifact: Path,
                                                                     tmp_path: Path) -> None:
    with ServerProcess([str(cyclegan_artifact), "--backend", "ort-cpu"]) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(server.url + "/")
        _wait(lambda: _frames(page) >= 5, 60, "five translated frames")
        first_fps, first_frames = float(page.text_content("#fps")), _frames(page)
        _wait(lambda: _frames(page) >= first_frames + 10, 60, "ten more frames")
        assert float(page.text_content("#fps")) > 0 and first_fps >= 0
        assert int(page.text_content("#frames")) >= first_frames + 10  # the counters move
        assert page.get_attribute("#result", "src").startswith("blob:")
        assert page.text_content("#status") == "" and not problems, (page.text_content("#status"), problems)
        assert _streams_open(server) == 1
        page.screenshot(path=str(tmp_path / "page.png"))
        page.close()
        _wait(lambda: _streams_open(server) == 0, 10, "the server to free the closed page's stream")
    assert (tmp_path / "page.png").read_bytes().startswith(b"\x89PNG")


def test_noise_model_page_draws_sample_grids_for_the_chosen_label(browser: Any, cgan_artifact: Path) -> None:
    with ServerProcess([str(cgan_artifact), "--backend", "ort-cpu", "--max-n", "16"]) as server:
        page = browser.new_page()
        page.goto(server.url + "/")
        _wait(lambda: _frames(page) >= 1, 60, "the first sample grid")
        assert page.is_visible("#sample-controls") and page.is_hidden("#translate-controls")
        assert page.locator("#label option").count() == 11  # "cycle through" + the ten classes
        page.select_option("#label", "3")
        page.fill("#seed", "7")
        page.check("#live")  # re-samples with seed + 1 after each grid
        _wait(lambda: _frames(page) >= 6, 60, "live sample grids")
        assert "seed" in page.text_content("#result-caption")
        assert int(page.input_value("#seed")) >= 10
        page.close()
        _wait(lambda: _streams_open(server) == 0, 10, "the stream to be freed")
