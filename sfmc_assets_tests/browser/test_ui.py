"""The Dagster UI end to end, in a real browser (Playwright driving Debian's Chromium, headless).

It starts what README command 1 (`make run`) starts, the Marketing Cloud and Experience Platform
sandboxes plus `dg dev`, then clicks through the UI the way a user does:

1. *Catalog* and *Lineage* (all groups expanded) show every asset the configuration defines.
2. *Materialize selected* → partition dialog: one day of the contacts chain succeeds with its checks.
3. *Materialize selected* → a range of three days of every data extension → *Launch backfill*: it completes.
4. With bad rows served by the sandbox, the same day-run of the contacts chain fails its blocking
   `pandera_contract` check and `aep/contacts` does not run.
5. A backfill of three days around that bad day: the bad day fails alone (clean and publish of contacts),
   the two other days are published, in the same backfill.

Every result seen in the UI is confirmed through Dagster's GraphQL API. A screenshot of each step is
written to docs/screenshots/ (the README shows them; `SFMC_SCREENSHOTS_DIR` moves them). When a step
fails, a screenshot of the page is saved under the test's tmp_path and its path printed.

The browser is Debian's `chromium` (scripts/ci/chromium.sh installs it), launched through
`executable_path`: `playwright install` (a browser download) is never needed.
"""

import contextlib
import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.e2e.stack import REPO, DagsterStack, dagster_dev

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

CHROMIUM = Path(os.environ.get("SFMC_CHROMIUM", "/usr/bin/chromium"))
#: scripts/test.sh (CI) sets this after installing Chromium: there a missing browser fails the test.
REQUIRE_BROWSER = os.environ.get("SFMC_REQUIRE_BROWSER") == "1"
try:
    from playwright import sync_api
except ImportError:  # pragma: no cover - playwright is in the dev extra
    sync_api = None  # type: ignore[assignment]
MISSING = (f"{CHROMIUM} is missing: install Debian's chromium (scripts/ci/chromium.sh)"
           if not CHROMIUM.exists() else
           "playwright is not installed (dev extra)" if sync_api is None else None)
if MISSING and not REQUIRE_BROWSER:
    pytest.skip(MISSING, allow_module_level=True)

# Bounded: every wait below has its own limit; this one catches a hang outside them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: Without the background-networking flags Chromium's connections are refused on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
SCREENSHOTS = Path(os.environ.get("SFMC_SCREENSHOTS_DIR", REPO / "docs" / "screenshots"))

DATA_EXTENSIONS = ("contacts", "campaigns", "activities")  # the chains steps 3 and 5 backfill


def _all_assets() -> dict[str, str]:
    """Every asset the bundled configuration defines, with its group: what the UI must show."""
    from sfmc_assets.definitions import defs

    graph = defs().resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).group_name for key in graph.materializable_asset_keys}


ALL_ASSETS = _all_assets()
DE_ASSETS = [f"{prefix}/{de}" for prefix in ("sfmc/raw", "sfmc/clean", "aep") for de in DATA_EXTENSIONS]
CONTACTS_CHAIN = ["sfmc/raw/contacts", "sfmc/clean/contacts", "aep/contacts"]
GOOD_DAY = "2026-10-03"
BACKFILL_DAYS = ["2026-10-02", "2026-10-03", "2026-10-04"]
BAD_DAY = "2026-10-05"  # outside the backfill: nothing of aep/contacts may exist for it at the end

# Generous but bounded waits, sized for 2 loaded cores: the UI's pages are GraphQL-backed and slow then.
UI_TIMEOUT_MS = 60_000      # one UI action or assertion
APPEAR_TIMEOUT_MS = 15_000  # how long a click's dialog or menu gets to show before the click is retried
CLICK_ATTEMPTS = 3
RUN_TIMEOUT_S = 300
BACKFILL_TIMEOUT_S = 480


@pytest.fixture(scope="module", autouse=True)
def _browser_available() -> None:
    """In CI (SFMC_REQUIRE_BROWSER=1) a missing browser or playwright fails the test instead of skipping it.

    Module-scoped and autouse, so it runs before the stack is started for nothing.
    """
    if MISSING:
        pytest.fail(MISSING, pytrace=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DagsterStack, MarketingCloudSandbox]]:
    """`make run`'s stack: both sandboxes (discovery files where `make run` writes them) + `dg dev`."""
    home = tmp_path_factory.mktemp("ui_stack")
    mc = MarketingCloudSandbox(home / "mc_state", start=DATA_START, end=DATA_END,
                               rows={"Contacts_DE": 400, "Campaign_Engagement": 3000, "Web_Activities": 3000})
    aep = ExperiencePlatformSandbox(home / "aep_state", processing_delay_s=0.05)
    mc.start()
    try:
        aep.start()
        (home / "sandboxes").mkdir()
        (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(mc.discovery()))
        (home / "sandboxes" / "experience_platform.json").write_text(json.dumps(aep.discovery()))
        with dagster_dev(home) as dagster:
            yield dagster, mc
    finally:
        aep.stop()
        mc.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator["Page"]:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport=VIEWPORT)
            pg.set_default_timeout(UI_TIMEOUT_MS)
            pg.set_default_navigation_timeout(UI_TIMEOUT_MS)
            sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)
            # A fresh instance greets the first visit with a newsletter modal: dismiss it whenever it shows.
            pg.add_locator_handler(pg.get_by_text("Join the Dagster community"),
                                   lambda: pg.get_by_role("button", name="Skip").click())
            yield pg
        finally:
            browser.close()


@contextlib.contextmanager
def step(pg: "Page", name: str, debug_dir: Path, dagster: DagsterStack) -> Iterator[None]:
    """Times a step; on failure keeps a screenshot of the page (and says where) before re-raising."""
    started = time.monotonic()
    try:
        yield
    except BaseException:
        shot = debug_dir / f"failed-{name}.png"
        try:
            pg.screenshot(path=str(shot), full_page=True, timeout=30_000)
            where = f"screenshot: {shot}"
        except Exception as exc:  # a hung page must not hide the original error
            where = f"no screenshot ({exc!r})"
        print(f"step {name!r} failed after {time.monotonic() - started:.0f} s on {pg.url}; {where}; "
              f"dg dev log: {dagster.home / 'dagster_dev.log'}")
        raise
    print(f"step {name!r} passed in {time.monotonic() - started:.0f} s")


def screenshot(pg: "Page", name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / name))


# -- UI helpers -----------------------------------------------------------------------------------


def click_until(click: Callable[[], None], shown: "Locator") -> None:
    """Click until `shown` (the dialog or menu the click opens) is visible.

    On a loaded machine a click can land while React re-renders the page (polling refreshes it) and
    open nothing; waiting longer does not help then, clicking again does.
    """
    for _ in range(CLICK_ATTEMPTS):
        if shown.is_visible():
            return
        with contextlib.suppress(sync_api.TimeoutError):
            click()
        with contextlib.suppress(sync_api.TimeoutError):
            shown.wait_for(state="visible", timeout=APPEAR_TIMEOUT_MS)
            return
    sync_api.expect(shown).to_be_visible()  # last chance, and the assertion's message


def open_catalog(pg: "Page", url: str, keys: list[str]) -> None:
    # The catalog renders only the rows in view: make room for every asset's row (`follow_toast` and
    # step 1 set the usual size back before their screenshots).
    pg.set_viewport_size({"width": VIEWPORT["width"], "height": 300 + 45 * len(ALL_ASSETS)})
    pg.goto(f"{url}/assets")
    for key in keys:  # one row (and row checkbox) per asset once the catalog has loaded
        pg.get_by_test_id(f"checkbox-{key}").wait_for(state="attached")


def tick(pg: "Page", keys: list[str]) -> None:
    """Ticks the catalog rows of `keys`; re-checks them all, as a catalog refresh can drop a selection."""
    for _ in range(CLICK_ATTEMPTS):
        for key in keys:
            box = pg.get_by_test_id(f"checkbox-{key}")
            if not box.is_checked():
                box.locator("xpath=..").click()  # the input itself is visually hidden behind its styled box
                sync_api.expect(box).to_be_checked()
        if all(pg.get_by_test_id(f"checkbox-{key}").is_checked() for key in keys):
            return
    for key in keys:
        sync_api.expect(pg.get_by_test_id(f"checkbox-{key}")).to_be_checked()


def materialize_from_catalog(pg: "Page", url: str, keys: list[str], partitions: str, n_partitions: int) -> "Locator":
    """Catalog → tick the assets → *Materialize selected* → type the partitions; returns the dialog."""
    open_catalog(pg, url, keys)
    tick(pg, keys)
    dialog = pg.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    click_until(lambda: pg.get_by_role("button", name="Materialize selected").click(timeout=APPEAR_TIMEOUT_MS),
                dialog)
    sync_api.expect(dialog).to_contain_text(f"Launch runs to materialize {len(keys)} assets")
    # The dialog lists the last 90 days by default; the sandbox's days may be older than that.
    all_time = pg.get_by_role("menuitem", name="All time")
    click_until(lambda: dialog.get_by_role("button", name=re.compile(r"^Last \d+ days")).click(
        timeout=APPEAR_TIMEOUT_MS), all_time)
    all_time.click()
    label = dialog.get_by_text("1 partition" if n_partitions == 1 else f"{n_partitions} partitions", exact=True)
    field = dialog.get_by_role("textbox")
    for _ in range(CLICK_ATTEMPTS):  # typed before the partition list loaded, the text can be dropped
        field.fill(partitions)
        field.press("Enter")
        with contextlib.suppress(sync_api.TimeoutError):
            label.wait_for(state="visible", timeout=APPEAR_TIMEOUT_MS)
            break
    sync_api.expect(label).to_be_visible()
    return dialog


def follow_toast(pg: "Page", url: str, prefix: str) -> str:
    """Follows the *View* link of the success toast to the run (or backfill) page; returns the link's id.

    The toast vanishes after 4 s. Read and then clicked in separate round trips, its link could vanish
    in between on a loaded machine, leaving the click to time out: so the href is read in the same
    in-page poll that sees the toast, and opened directly if the toast is already gone.
    """
    href = pg.wait_for_function(
        """prefix => Array.from(document.querySelectorAll(`a[href^="${prefix}"]`))
             .filter(a => a.textContent.trim() === 'View').map(a => a.getAttribute('href'))[0] || null""",
        arg=prefix, polling=100,
    ).json_value()
    try:
        pg.locator(f'a[href="{href}"]').filter(has_text="View").click(timeout=3_000)
    except sync_api.TimeoutError:
        pg.goto(url + href)
    pg.wait_for_url(f"**{href}**")
    pg.set_viewport_size(VIEWPORT)
    return href.rsplit("/", 1)[-1]


def launch_one_run(pg: "Page", url: str, keys: list[str], day: str) -> str:
    """Materialize one partition of `keys` from the UI; follows the toast to the run page; returns its id."""
    dialog = materialize_from_catalog(pg, url, keys, day, 1)
    dialog.get_by_role("button", name="Launch 1 run").click()
    return follow_toast(pg, url, "/runs/")


def filter_run_events(pg: "Page", text: str) -> None:
    pg.get_by_placeholder("Filter…").fill(text)


def wait_layout_settled(pg: "Page") -> None:
    """Until the graph's boxes stop moving (its layout animates): two equal polls in a row."""
    pg.wait_for_function(
        """() => {
            const now = JSON.stringify(Array.from(document.querySelectorAll('foreignObject')).map(f => {
                const r = f.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }));
            const same = window.__sfmcLayout === now;
            window.__sfmcLayout = now;
            return same;
        }""",
        polling=300,
    )


# -- GraphQL helpers ------------------------------------------------------------------------------


def path(key: str) -> dict[str, list[str]]:
    return {"path": key.split("/")}


def run_info(dagster: DagsterStack, run_id: str) -> dict[str, Any]:
    return dagster.graphql(
        """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status
             tags { key value } assetSelection { path } stepStats { stepKey status } } } }""",
        {"id": run_id},
    )["runOrError"]


def wait_run(dagster: DagsterStack, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    """The run once finished (GraphQL), so the UI is then only asked to show a settled result."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = run_info(dagster, run_id)
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run['status']} after {timeout_s} s")
        time.sleep(1.0)


def check_executions(dagster: DagsterStack, key: str, check: str, partition: str) -> list[dict[str, Any]]:
    """Newest first."""
    return dagster.graphql(
        """query($k: AssetKeyInput!, $c: String!, $p: String) {
             assetCheckExecutions(assetKey: $k, checkName: $c, partition: $p, limit: 20) {
               runId status partition evaluation { success partition severity } } }""",
        {"k": path(key), "c": check, "p": partition},
    )["assetCheckExecutions"]


def materializations(dagster: DagsterStack, key: str, partitions: list[str]) -> list[dict[str, Any]]:
    return dagster.graphql(
        """query($k: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $k) {
             ... on Asset { assetMaterializations(partitions: $p) { partition runId } } } }""",
        {"k": path(key), "p": partitions},
    )["assetOrError"].get("assetMaterializations", [])


def tags(obj: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in obj["tags"]}


# -- the test -------------------------------------------------------------------------------------


def test_the_ui_end_to_end(stack: tuple[DagsterStack, MarketingCloudSandbox], page: "Page", tmp_path: Path) -> None:
    dagster, mc = stack
    url = dagster.url
    expect = sync_api.expect

    # 1. The catalog and the asset graph show every asset.
    with step(page, "01-asset-graph", tmp_path, dagster):
        nodes = dagster.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
        assert {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes} == ALL_ASSETS

        open_catalog(page, url, list(ALL_ASSETS))
        ids = page.locator('[data-testid^="checkbox-"]').evaluate_all("els => els.map(e => e.dataset.testid)")
        assert {i.removeprefix("checkbox-") for i in ids if "/" in i} == set(ALL_ASSETS)
        for key in ALL_ASSETS:
            link = page.locator(f'a[href="/assets/{key}"]')
            expect(link).to_be_visible()
            expect(link).to_contain_text(key.replace("/", " / "))

        page.locator('a[href="/asset-groups"]').first.click()  # *Lineage* in the navigation
        expect(page.get_by_text("Global asset lineage", exact=True)).to_be_visible()
        groups = page.locator("foreignObject.group")
        expect(groups).to_have_count(len(set(ALL_ASSETS.values())))
        wait_layout_settled(page)  # a right-click on a still-moving graph can land on a group
        canvas = page.locator("svg").filter(has=groups).first
        box = canvas.bounding_box()
        assert box is not None
        click_until(lambda: canvas.click(button="right", position={"x": 30, "y": box["height"] - 30},
                                         timeout=APPEAR_TIMEOUT_MS),  # an empty corner
                    page.get_by_role("menuitem", name="Expand all groups"))
        page.get_by_role("menuitem", name="Expand all groups").click()
        asset_nodes = page.locator("foreignObject:not(.group)").filter(has_text=re.compile(r"\w"))
        expect(asset_nodes).to_have_count(len(ALL_ASSETS))
        wait_layout_settled(page)  # the expanded layout animates too: screenshot it at rest
        # each node sits inside its group's box: (group, node label) pairs, the UI's view of the key
        shown = page.evaluate("""() => {
            const fos = Array.from(document.querySelectorAll('foreignObject'));
            const num = (f, a) => parseFloat(f.getAttribute(a));
            const groups = fos.filter(f => f.classList.contains('group')).map(f => ({
                name: f.textContent.trim(), x: num(f, 'x'), y: num(f, 'y'), w: num(f, 'width'), h: num(f, 'height')}));
            return fos.filter(f => !f.classList.contains('group') && f.textContent.trim()).map(f => {
                const x = num(f, 'x'), y = num(f, 'y');
                const g = groups.find(g => x >= g.x && y >= g.y && x <= g.x + g.w && y <= g.y + g.h);
                return [g ? g.name : null, f.textContent.trim()];
            });
        }""")
        assert sorted(map(tuple, shown)) == sorted((g, k.rsplit("/", 1)[1]) for k, g in ALL_ASSETS.items())
        screenshot(page, "01-asset-graph.png")
        page.set_viewport_size(VIEWPORT)

    # 2. One day of the contacts chain, from the partition dialog: the run and its checks succeed.
    with step(page, "02-materialized", tmp_path, dagster):
        run_id = launch_one_run(page, url, CONTACTS_CHAIN, GOOD_DAY)
        run = wait_run(dagster, run_id)
        assert run["status"] == "SUCCESS", run
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        expect(page.get_by_text(f"partition: {GOOD_DAY}")).to_be_visible()
        filter_run_events(page, "pandera_contract")
        expect(page.get_by_text("Succeeded (3)", exact=True)).to_be_visible()
        expect(page.get_by_text("Check pandera_contract succeeded").first).to_be_visible()
        screenshot(page, "02-materialized.png")

        run = run_info(dagster, run_id)
        assert tags(run).get("dagster/from_ui") == "true" and tags(run)["dagster/partition"] == GOOD_DAY
        assert {"/".join(k["path"]) for k in run["assetSelection"]} == set(CONTACTS_CHAIN)
        assert {s["stepKey"]: s["status"] for s in run["stepStats"]} == dict.fromkeys(
            ("sfmc__raw__contacts", "sfmc__clean__contacts", "aep__contacts"), "SUCCESS")
        latest = check_executions(dagster, "sfmc/clean/contacts", "pandera_contract", GOOD_DAY)[0]
        assert (latest["runId"], latest["status"], latest["evaluation"]["success"]) == (run_id, "SUCCEEDED", True)
        for key in CONTACTS_CHAIN:
            assert run_id in {m["runId"] for m in materializations(dagster, key, [GOOD_DAY])}, key

    # 3. A backfill of three days of every data extension, from the same dialog: it completes.
    with step(page, "03-backfill", tmp_path, dagster):
        dialog = materialize_from_catalog(page, url, DE_ASSETS, f"[{BACKFILL_DAYS[0]}...{BACKFILL_DAYS[-1]}]",
                                          len(BACKFILL_DAYS))
        dialog.get_by_role("button", name="Launch backfill").click()
        backfill_id = follow_toast(page, url, "/runs/b/")
        assert dagster.wait_backfill(backfill_id, timeout_s=BACKFILL_TIMEOUT_S) == "COMPLETED_SUCCESS"
        status = page.get_by_text("Status", exact=True).locator("xpath=..")
        expect(status).to_contain_text("Succeeded")
        expect(page.get_by_text("100% completed")).to_have_count(len(DE_ASSETS))
        screenshot(page, "03-backfill.png")

        backfill = dagster.graphql(
            """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
                 status partitionNames tags { key value } assetSelection { path } runs(limit: 50) { id status } } } }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]
        assert backfill["partitionNames"] == BACKFILL_DAYS
        assert {"/".join(k["path"]) for k in backfill["assetSelection"]} == set(DE_ASSETS)
        assert tags(backfill).get("dagster/from_ui") == "true"
        run_ids = {r["id"] for r in backfill["runs"]}
        assert run_ids and all(r["status"] == "SUCCESS" for r in backfill["runs"]), backfill["runs"]
        for key in DE_ASSETS:
            got = {m["partition"] for m in materializations(dagster, key, BACKFILL_DAYS) if m["runId"] in run_ids}
            assert got == set(BACKFILL_DAYS), key
        for de in DATA_EXTENSIONS:
            for day in BACKFILL_DAYS:
                latest = check_executions(dagster, f"sfmc/clean/{de}", "pandera_contract", day)[0]
                assert latest["runId"] in run_ids and latest["status"] == "SUCCEEDED", (de, day, latest)

    # 4. The sandbox serves bad rows for a day: its blocking check fails and nothing is published.
    with step(page, "04-blocked-by-check", tmp_path, dagster):
        assert mc.inject_bad_rows("Contacts_DE", "invalid_email", dt.date.fromisoformat(BAD_DAY), n=2)
        run_id = launch_one_run(page, url, CONTACTS_CHAIN, BAD_DAY)
        run = wait_run(dagster, run_id)
        assert run["status"] == "FAILURE", run
        expect(page.get_by_text("Failure", exact=True).first).to_be_visible()
        filter_run_events(page, "pandera_contract")
        expect(page.get_by_text("Check pandera_contract failed").first).to_be_visible()
        # the step panel: raw succeeded, clean errored (its blocking check), aep__contacts never ran
        for label in ("Succeeded (1)", "Errored (1)", "Not executed (1)"):
            expect(page.get_by_text(label, exact=True)).to_be_visible()
        screenshot(page, "04-blocked-by-check.png")

        steps = {s["stepKey"]: s["status"] for s in run["stepStats"]}
        assert steps["sfmc__raw__contacts"] == "SUCCESS" and steps["sfmc__clean__contacts"] == "FAILURE", steps
        assert steps.get("aep__contacts") in (None, "SKIPPED"), steps
        latest = check_executions(dagster, "sfmc/clean/contacts", "pandera_contract", BAD_DAY)[0]
        assert (latest["runId"], latest["status"], latest["evaluation"]["success"]) == (run_id, "FAILED", False)
        assert materializations(dagster, "aep/contacts", [BAD_DAY]) == []
        assert run_id not in {m["runId"] for m in materializations(dagster, "sfmc/clean/contacts", [BAD_DAY])}

    # 5. A backfill over the bad day and its neighbours: that day fails alone, the others are published.
    with step(page, "05-backfill-bad-day", tmp_path, dagster):
        days = ["2026-10-04", BAD_DAY, "2026-10-06"]
        dialog = materialize_from_catalog(page, url, DE_ASSETS, f"[{days[0]}...{days[-1]}]", len(days))
        dialog.get_by_role("button", name="Launch backfill").click()
        backfill_id = follow_toast(page, url, "/runs/b/")
        assert dagster.wait_backfill(backfill_id, timeout_s=BACKFILL_TIMEOUT_S) == "COMPLETED_FAILED"
        page.reload()
        status = page.get_by_text("Status", exact=True).locator("xpath=..")
        expect(status).to_contain_text("Failed")
        expect(page.get_by_text("100% completed")).to_have_count(len(DE_ASSETS))  # every day has a verdict
        screenshot(page, "05-backfill-bad-day.png")

        counts = {"/".join(s["assetKey"]["path"]): (s["numPartitionsMaterialized"], s["numPartitionsFailed"])
                  for s in dagster.graphql(
                      """query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill {
                           assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
                             assetKey { path } numPartitionsMaterialized numPartitionsFailed } } } } } }""",
                      {"id": backfill_id})["partitionBackfillOrError"]["assetBackfillData"]["assetBackfillStatuses"]}
        held_back = {"sfmc/clean/contacts", "aep/contacts"}
        assert counts == {key: (2, 1) if key in held_back else (3, 0) for key in DE_ASSETS}, counts
        published = {m["partition"] for m in materializations(dagster, "aep/contacts", days)}
        assert published >= {days[0], days[2]} and BAD_DAY not in published
