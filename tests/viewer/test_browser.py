"""The viewer in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
served by a real HTTP server on loopback, over real runs: what a person sees.

Screenshots go to ``tests/viewer/screenshots/`` (git-ignored). Without Playwright or the
browser these tests skip, saying which is missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from celery_durable import timeline as tl
from celery_durable.devstack import WebServer
from tests.viewer.support import unique, wait_hook

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).parent / "screenshots"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install playwright (the browser is "
                    "Debian's chromium: apt-get install chromium; never `playwright install`)")
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def base_url(viewer_worker: Any, proj: Any) -> Iterator[str]:
    flask_app = Flask("viewer-browser")
    flask_app.register_blueprint(proj.durable.viewer_blueprint(actions=True), url_prefix="/runs")
    server = WebServer(flask_app)
    yield f"{server.url}/runs"
    server.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab; ``page.problems`` collects script errors and failed requests."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    tab.problems = []
    tab.on("pageerror", lambda error: tab.problems.append(f"script error: {error}"))
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    # A refresh the page had in flight when it navigated is aborted, not failed.
    tab.on("requestfailed", lambda r: None if "ERR_ABORTED" in (r.failure or "") else
           tab.problems.append(f"request failed: {r.url} ({r.failure})"))
    SHOTS.mkdir(exist_ok=True)
    yield tab
    context.close()


def shot(page: Any, name: str, full: bool = True) -> None:
    page.screenshot(path=str(SHOTS / name), full_page=full)


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector)
    assert found.count() == 1, f"{selector}: {found.count()} elements"
    bounds = found.bounding_box()
    assert bounds is not None and bounds["width"] > 0, selector
    return bounds


def overlap(boxes: list[dict[str, float]]) -> float:
    """How many pixels all boxes share on the x axis (negative: they do not)."""
    return min(b["x"] + b["width"] for b in boxes) - max(b["x"] for b in boxes)


def steps_named(proj: Any, run_id: str, name: str) -> list[tl.Row]:
    runtime = proj.durable.runtime
    timeline = tl.build(run_id, "running", runtime.store.events(run_id))
    return [r for r in timeline.rows if r.kind == "step" and r.name.endswith(f".{name}")]


def test_the_list_colours_statuses_and_follows_a_running_run(
        page: Any, base_url: str, proj: Any) -> None:
    token = unique("list")
    run = proj.hook_wait.start(token)
    wait_hook(proj.durable, token)
    page.goto(f"{base_url}/")
    row = f'tr[data-run-id="{run.id}"]'
    assert page.locator(f"{row} .badge").inner_text() == "running"
    colour = page.eval_on_selector(f"{row} .badge", "e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(37, 99, 235)"  # --running
    page.evaluate("window.__sameDocument = 42")
    shot(page, "runs-list.png", full=False)
    proj.durable.resume_hook(token, {"ok": True})
    page.wait_for_selector(f'{row}[data-status="completed"]', timeout=WAIT_MS)
    assert page.locator(f"{row} .badge").inner_text() == "completed"
    assert page.evaluate("window.__sameDocument") == 42, "the page was reloaded"
    assert page.problems == []


def test_a_run_timeline_in_the_browser(page: Any, base_url: str, proj: Any,
                                       viewer_proj: Any) -> None:
    token = unique("showcase")
    run = viewer_proj.showcase.start(unique("k"), token)
    hook = wait_hook(proj.durable, token, timeout=60)
    page.goto(f"{base_url}/{run.id}")
    kinds = page.eval_on_selector_all(".chart .bar[data-kind]",
                                      "bars => bars.map(b => b.dataset.kind)")
    assert sorted(set(kinds)) == ["hook", "sleep", "step"]
    assert kinds.count("step") == 3 + 2 + 2  # the gather, the race, two flaky attempts

    # The gather's three steps ran at once: their bars share a stretch of the axis.
    three = [r.seq for r in steps_named(proj, run.id, "slow_echo")][:3]
    assert overlap([box(page, f'.bar[data-seq="{s}"][data-kind="step"]') for s in three]) > 5
    # So did the race's two contenders.
    tortoise = steps_named(proj, run.id, "slow_echo")[3].seq
    adder = steps_named(proj, run.id, "add")[0].seq
    assert overlap([box(page, f'.bar[data-seq="{tortoise}"]'),
                    box(page, f'.bar[data-seq="{adder}"]')]) > 0
    # Work done in sequence does not: the sleep begins after the gather ended.
    sleep_box = box(page, '.bar[data-kind="sleep"]')
    assert all(sleep_box["x"] >= b["x"] + b["width"] - 1 for b in
               (box(page, f'.bar[data-seq="{s}"][data-kind="step"]') for s in three))

    # The failed attempt that was retried is its own bar, marked.
    flaky = steps_named(proj, run.id, "flaky")[0].seq
    failed = f'.bar[data-seq="{flaky}"][data-outcome="retrying"]'
    assert page.locator(failed).count() == 1
    assert "failed-attempt" in (page.get_attribute(failed, "class") or "")
    assert page.locator(f"{failed} .mark").inner_text() == "✕"
    assert page.locator(f'.bar[data-seq="{flaky}"][data-outcome="completed"]').count() == 1
    page.hover(failed)
    tip = page.locator("#tip")
    assert tip.is_visible() and "failed, retried" in tip.inner_text()
    assert "ConnectionError: attempt 1 failed" in tip.inner_text()
    page.click(failed)
    panel = page.locator(f"#detail-{flaky}")
    assert panel.is_visible()
    assert page.locator(".detail:visible").count() == 1
    assert page.locator(f'#detail-{flaky} .attempt.selected[data-attempt="1"]').count() == 1
    assert "ConnectionError" in panel.inner_text() and '"k' in panel.inner_text()
    shot(page, "run-waiting-on-hook.png")

    # Resume the hook from the page's own form: the page confirms, then follows the run.
    page.fill(f"#payload-{hook.seq}", '{"approved": true}')
    page.click(f'form[action$="/hooks/{hook.seq}/resume"] button')
    page.wait_for_selector("#done", timeout=WAIT_MS)
    assert f"Hook #{hook.seq} resumed" in page.inner_text("#done")
    page.wait_for_selector('#live[data-status="completed"]', timeout=WAIT_MS)
    assert '"approved": true' in page.inner_text("#outcome")
    assert page.locator(".bar[data-kind='hook']").count() == 1
    shot(page, "run-completed.png")
    assert page.problems == []


def test_a_running_run_page_refreshes_itself(page: Any, base_url: str, proj: Any) -> None:
    token = unique("refresh")
    run = proj.hook_wait.start(token)
    wait_hook(proj.durable, token)
    page.goto(f"{base_url}/{run.id}")
    assert page.locator('#live[data-status="running"]').count() == 1
    assert page.locator("#actions .resume").count() == 1
    page.evaluate("window.__sameDocument = 7")
    proj.durable.resume_hook(token, "from python")
    page.wait_for_selector('#live[data-status="completed"]', timeout=WAIT_MS)
    assert "from python" in page.inner_text("#outcome")
    assert page.locator("#actions .resume").count() == 0  # nothing left to resume
    assert page.evaluate("window.__sameDocument") == 7, "the page was reloaded"
    assert page.problems == []


def test_a_gather_of_500_is_one_row_until_opened(page: Any, base_url: str,
                                                 proj: Any) -> None:
    run = proj.fan_out.start(500)
    assert run.result(timeout=120) == sum(range(500))
    page.goto(f"{base_url}/{run.id}")
    group = page.locator('.groupbar[data-kind="step"][data-count="500"]')
    assert group.count() == 1
    assert page.locator(".chart .bar[data-kind]:visible").count() == 0
    assert page.locator(".chart .bar[data-kind]").count() == 500  # there, folded away
    assert "500 completed" in page.inner_text("details.group > summary")
    assert box(page, "#chart")["height"] < 120  # the chart stays one glance tall
    shot(page, "gather-500.png", full=False)
    page.click("details.group > summary")
    assert page.locator(".chart .bar[data-kind]:visible").count() == 500
    page.click('.bar[data-seq="7"][data-kind="step"]')  # its panel is fetched on demand
    page.wait_for_selector("#detail-7:not([hidden])", timeout=WAIT_MS)
    assert "noop" in page.inner_text("#detail-7") and "attempt 1" in page.inner_text("#detail-7")
    shot(page, "gather-500-open.png", full=False)
    assert page.problems == []


def test_the_list_after_all_those_runs(page: Any, base_url: str, proj: Any) -> None:
    failed = proj.raiser.start("for the list")
    with pytest.raises(Exception, match="for the list"):
        failed.result(timeout=30)
    page.goto(f"{base_url}/")
    statuses = page.eval_on_selector_all("tr[data-run-id]",
                                         "rows => rows.map(r => r.dataset.status)")
    assert statuses[0] == "failed" and "completed" in statuses
    colour = page.eval_on_selector(f'tr[data-run-id="{failed.id}"] .badge',
                                   "e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(220, 38, 38)"  # --failed
    shot(page, "runs-list-after.png", full=False)
    page.click(f'tr[data-run-id="{failed.id}"] td.when')  # a click anywhere on the row
    page.wait_for_url(f"**/runs/{failed.id}")
    assert "CardDeclined" in page.inner_text("#outcome")
    assert page.problems == []
