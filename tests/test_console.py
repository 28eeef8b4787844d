"""The web console (/console/) in a real browser: Debian's chromium driven by Playwright, against
a real ``openiai serve``. ``make test`` installs chromium; without it these tests fail (they
never skip): the console's acceptance is that it works in a browser.
"""

from __future__ import annotations

import re
import shutil
import uuid

import pytest

from harness import Server
from openiai.console.sessions import SessionStore, csrf_ok

LFW = "lfw/images"
COLIN = f"{LFW}/Colin_Powell/Colin_Powell_0038.jpg"
TONY = f"{LFW}/Tony_Blair/Tony_Blair_0006.jpg"
TONY_PROBE = f"{LFW}/Tony_Blair/Tony_Blair_0018.jpg"


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install -y "
                    "chromium); the console tests need a real browser", pytrace=False)
    return path


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    # No key cache: a key disabled by the admin ends its console sessions on the next page.
    srv = Server(tmp_path_factory.mktemp("console"), extra_env={"OPENIAI_KEY_CACHE_SECONDS": "0"})
    srv.start(wait_ready=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import Error, sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, headless=True,
                                  args=["--no-sandbox", "--disable-gpu"])
        except Error as exc:
            pytest.fail(f"chromium ({executable}) could not be started: {exc}", pytrace=False)
        yield b
        b.close()


@pytest.fixture
def base(console_server) -> str:
    return f"http://{console_server.endpoint}/console"


def _account(console_server) -> tuple[str, str]:
    return console_server.create_key(f"console-{uuid.uuid4().hex[:8]}")


def _sign_in(browser, base: str, secret_id: str, secret_key: str):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{base}/groups")
    assert page.url.startswith(f"{base}/login")  # not signed in: sent to the sign-in page
    page.fill("#secret_id", secret_id)
    page.fill("#secret_key", secret_key)
    page.click("form[aria-labelledby=h-key] button")
    page.wait_for_url(f"{base}/groups")
    return context, page


def _click_and_load(page, selector: str) -> None:
    """Click what submits a form or follows a link, and wait for the new page.

    Playwright's click need not wait for the navigation it starts; reading the page straight
    after it can see the old page (CI once counted 0 boxes on the detect form it had just sent).
    """
    with page.expect_navigation():
        page.click(selector)


def _create_group(page, base: str, gid: str) -> None:
    page.fill("#group_id", gid)
    page.fill("#group_name", f"Group {gid}")
    page.click("button:text('Create group')")
    page.wait_for_url(f"{base}/groups/{gid}/persons")


def _enrol(page, testdata, pid: str, name: str, photo: str) -> None:
    page.fill("#person_id", pid)
    page.fill("#person_name", name)
    page.set_input_files("#photo", str(testdata / photo))
    page.click("button:text('Enrol')")
    page.wait_for_selector(f"text=Person {pid} enrolled.")


def test_walk_sign_in_enrol_search_delete_sign_out(browser, base, console_server, testdata):
    context, page = _sign_in(browser, base, *_account(console_server))
    errors = []  # a Content-Security-Policy violation or a failed load shows up here
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _create_group(page, base, "staff")
    _enrol(page, testdata, "colin", "Colin Powell", COLIN)
    _enrol(page, testdata, "tony", "Tony Blair", TONY)
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    page.fill("#q", "BLAIR")  # find by name, case-insensitive; then back to everyone
    _click_and_load(page, "button:text('Find')")
    assert [a.inner_text() for a in page.locator("tbody tr td a").all()] == ["tony"]
    _click_and_load(page, "text=Show all")
    assert page.locator("tbody img.thumb").count() == 2  # thumbnails of the stored crops
    for img in page.locator("tbody img.thumb").all():  # each decoded: a real image came back
        assert img.evaluate("i => i.complete && i.naturalWidth") > 0

    page.goto(f"{base}/search")
    page.set_input_files("#photo", str(testdata / TONY_PROBE))
    page.fill("#threshold", "0")  # every candidate, so the order is what is checked
    _click_and_load(page, "button:text('Search')")
    first = page.locator("ol.candidates li").first
    assert first.locator("a.cand-person").inner_text() == "tony"
    scores = [float(s) for s in page.locator("ol.candidates .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and len(scores) == 2
    assert page.locator("ol.candidates img.thumb").count() == 2  # each candidate's first face

    first.locator("a.cand-person").click()  # the person's page, from the search result
    page.wait_for_url(f"{base}/groups/staff/persons/tony")
    page.click("text=Delete person…")
    page.click("button:text('Delete person')")  # the confirmation
    page.wait_for_url(f"{base}/groups/staff/persons")
    assert page.locator("text=Person tony deleted.").is_visible()
    assert page.locator("tbody tr").count() == 1
    assert page.locator("tbody tr a").first.inner_text() == "colin"

    assert errors == []
    page.click("button:text('Sign out')")
    page.wait_for_url(f"{base}/login")
    page.goto(f"{base}/groups/staff/persons")
    assert page.url.startswith(f"{base}/login")  # the session is gone, not only the cookie
    context.close()


def test_other_account_cannot_open_a_group_or_thumbnail_by_url(browser, base, console_server,
                                                             testdata):
    context_a, page_a = _sign_in(browser, base, *_account(console_server))
    _create_group(page_a, base, "private")
    _enrol(page_a, testdata, "p1", "Colin", COLIN)
    thumb = page_a.locator("tbody img.thumb").first.get_attribute("src")
    assert page_a.request.get(f"http://{console_server.endpoint}{thumb}").status == 200

    context_b, page_b = _sign_in(browser, base, *_account(console_server))
    assert "private" not in page_b.locator("main").inner_text()
    for path in ("/groups/private/persons", "/groups/private", "/groups/private/persons/p1",
                 "/groups/private/delete"):
        response = page_b.goto(f"{base}{path}")
        assert response.status == 404, path
        assert "GroupIdNotExist" in page_b.locator("main").inner_text()
    assert page_b.request.get(f"http://{console_server.endpoint}{thumb}").status == 404
    # B's own group of the same id is B's: A's person is not in it.
    page_b.goto(f"{base}/groups")
    _create_group(page_b, base, "private")
    assert page_b.locator("tbody tr").count() == 0
    # B edits and deletes B's group (after a confirmation page); A's group stays.
    page_b.goto(f"{base}/groups/private")
    page_b.fill("#group_name", "Renamed by B")
    page_b.click("button:text('Save')")
    page_b.wait_for_selector("text=Group private saved.")
    _click_and_load(page_b, "text=Delete this group…")
    assert "holds 0 persons" in page_b.locator("main").inner_text()
    page_b.click("button:text('Delete group')")
    page_b.wait_for_selector("text=Group private deleted.")
    page_a.goto(f"{base}/groups")
    assert page_a.locator("a:text-is('private')").count() == 1
    assert "Group private" in page_a.locator("tbody").inner_text()
    # Not signed in: no thumbnail either.
    anonymous = browser.new_context()
    response = anonymous.request.get(f"http://{console_server.endpoint}{thumb}", max_redirects=0)
    assert response.status == 303 and "/console/login" in response.headers["location"]
    for c in (context_a, context_b, anonymous):
        c.close()


def test_a_form_post_without_the_csrf_token_is_refused(browser, base, console_server):
    context, page = _sign_in(browser, base, *_account(console_server))
    # The browser's own cookie goes along (same context); only the token is missing or wrong.
    for form in ({"group_id": "forged", "group_name": "Forged"},
                 {"group_id": "forged", "group_name": "Forged", "csrf": "not-the-token"}):
        response = page.request.post(f"{base}/groups", form=form)
        assert response.status == 403
        assert "CSRF" in response.text()
    page.goto(f"{base}/groups")
    assert "forged" not in page.locator("main").inner_text()
    # Removing the hidden field from the page's own form: refused as well.
    page.eval_on_selector("form.card input[name=csrf]", "e => e.remove()")
    page.fill("#group_id", "forged")
    _click_and_load(page, "button:text('Create group')")
    assert "CSRF" in page.locator("main").inner_text()
    # With the page's token the same post goes through (the token is what was checked).
    token = re.search(r'name="csrf" value="([^"]+)"', page.goto(f"{base}/groups").text()).group(1)
    assert page.request.post(f"{base}/groups", form={"group_id": "real", "group_name": "Real",
                                                      "csrf": token}).ok
    page.goto(f"{base}/groups")
    assert page.locator("a:text-is('real')").count() == 1
    # The sign-in form has its own token (login CSRF).
    fresh = browser.new_context()
    response = fresh.request.post(f"{base}/login", form={"secret_id": "x", "secret_key": "y"})
    assert response.status == 403
    fresh.close()
    context.close()


def test_session_cookie_and_failed_sign_in(browser, base, console_server):
    secret_id, secret_key = _account(console_server)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"http://{console_server.endpoint}/")  # the endpoint's page links the console
    page.click("a[href='/console/']")
    page.wait_for_url(f"{base}/login")
    page.fill("#secret_id", secret_id)
    page.fill("#secret_key", secret_key + "x")
    page.click("form[aria-labelledby=h-key] button")
    assert "Sign-in failed" in page.locator("main").inner_text()
    assert not [c for c in context.cookies() if c["name"] == "openiai_console"]
    context.close()
    context, page = _sign_in(browser, base, secret_id, secret_key)
    cookie = next(c for c in context.cookies() if c["name"] == "openiai_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console/"
    assert page.evaluate("document.cookie") == ""  # no script can read the session
    # An account has no admin pages.
    assert page.goto(f"{base}/admin").status == 404
    assert page.goto(f"{base}/dashboard").status == 404
    context.close()


def test_admin_creates_disables_and_enables_keys(browser, base, console_server):
    token = console_server.cli("admin-token").strip()
    stored = console_server.data_dir / "admin-tokens"
    assert token not in stored.read_text() and stored.stat().st_mode & 0o077 == 0  # digest, 0600
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#admin_token", token)
    page.click("button:text('Sign in as admin')")
    page.wait_for_url(f"{base}/admin")
    account = f"carol-{uuid.uuid4().hex[:6]}"
    page.fill("#account", account)
    _click_and_load(page, "button:text('Create key')")
    secret_id = page.locator("#new-secret-id").inner_text()
    secret_key = page.locator("#new-secret-key").inner_text()
    page.goto(f"{base}/admin")
    assert page.locator("#new-secret-key").count() == 0  # shown once
    assert secret_key not in page.content()
    assert page.goto(f"{base}/groups").status == 404  # an admin sees no account's data
    assert page.goto(f"{base}/dashboard").ok
    assert "requests/s" in page.locator("main").inner_text()

    carol, carol_page = _sign_in(browser, base, secret_id, secret_key)
    page.goto(f"{base}/admin")
    page.click(f"button[aria-label='Disable {secret_id}']")
    page.wait_for_selector(f"text={secret_id} disabled.")
    carol_page.goto(f"{base}/groups")
    assert carol_page.url.startswith(f"{base}/login")  # the disabled key's session ended
    page.click(f"button[aria-label='Enable {secret_id}']")
    page.wait_for_selector(f"text={secret_id} enabled.")
    carol.close()
    carol, carol_page = _sign_in(browser, base, secret_id, secret_key)
    carol.close()
    console_server.cli("admin-token", "--revoke-all")  # ends the admin sessions too
    page.goto(f"{base}/admin")
    assert page.url.startswith(f"{base}/login")
    context.close()


def test_detect_draws_boxes_and_landmarks(browser, base, console_server, testdata):
    context, page = _sign_in(browser, base, *_account(console_server))
    page.goto(f"{base}/detect")
    page.set_input_files("#photo", str(testdata / TONY))
    _click_and_load(page, "button:text('Detect')")
    svg = page.locator("svg.photo")
    assert svg.locator("rect.box").count() >= 1
    assert svg.locator("circle.pt").count() >= 5
    assert "age" in page.locator("table").inner_text()
    page.goto(f"{base}/compare")
    page.set_input_files("#photo_a", str(testdata / TONY))
    page.set_input_files("#photo_b", str(testdata / TONY_PROBE))
    _click_and_load(page, "button:text('Compare')")
    same = float(page.locator("h2 .score").inner_text())
    page.set_input_files("#photo_a", str(testdata / TONY))
    page.set_input_files("#photo_b", str(testdata / COLIN))
    _click_and_load(page, "button:text('Compare')")
    assert same > float(page.locator("h2 .score").inner_text())
    page.goto(f"{base}/liveness")
    page.set_input_files("#photo", str(testdata / TONY))
    _click_and_load(page, "button:text('Check')")
    verdict = page.locator("#h-res").inner_text()
    assert verdict.startswith(("Live", "Not live")) and 0 <= float(verdict.split()[-1]) <= 100
    page.goto(f"{base}/search")
    page.click("button:text('Search')")  # no photo chosen: the browser's own check stops it
    assert page.url == f"{base}/search" and page.locator("#h-res").count() == 0
    context.close()


def test_sessions_expire_when_idle_and_after_the_absolute_limit():
    now = [0.0]
    store = SessionStore(idle=30 * 60, absolute=12 * 3600, clock=lambda: now[0])
    session, cookie = store.create("account", "a", 1, "AKID")
    assert store.get(cookie) is session
    assert store.get(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None  # forged MAC
    now[0] += 29 * 60
    assert store.get(cookie) is session  # each request restarts the idle clock
    now[0] += 31 * 60
    assert store.get(cookie) is None  # idle for 31 minutes
    session, cookie = store.create("account", "a", 1, "AKID")
    for _ in range(12 * 2 + 1):  # active every 30 minutes - 1 s, for more than 12 hours
        now[0] += 30 * 60 - 1
        alive = store.get(cookie)
    assert alive is None
    assert not csrf_ok(session, None) and not csrf_ok(session, "x") and csrf_ok(session, session.csrf)


def test_console_commands_are_listed():
    import subprocess

    from harness import OPENIAI, REPO

    for args, wanted in ((["admin-token", "--help"], "--revoke-all"),
                         (["bench", "--help"], "openiai bench console"),
                         (["bench", "console", "--help"], "--shots")):
        out = subprocess.run([*OPENIAI, *args], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and wanted in out.stdout, (args, out.stderr)


def test_jobs_page_lists_the_accounts_jobs_only(browser, base, console_server, testdata):
    import time

    from harness import Api
    from images import b64

    secret = _account(console_server)
    api = Api(console_server, *secret)
    api.call("CreateGroup", GroupId="legacy", GroupName="Legacy", FaceModelVersion="2.0")
    api.call("CreatePerson", GroupId="legacy", PersonId="colin", PersonName="C", Image=b64(COLIN))
    job = api.call("UpgradeGroupFaceModelVersion", GroupId="legacy",
                   FaceModelVersion="3.0")["JobId"]
    for _ in range(300):
        if api.call("GetUpgradeGroupFaceModelVersionResult", JobId=job)["Status"] != 0:
            break
        time.sleep(0.1)
    context_a, page_a = _sign_in(browser, base, *secret)
    page_a.click("nav >> text=Jobs")
    page_a.wait_for_url(f"{base}/jobs")
    row = page_a.locator("tbody tr")
    assert row.count() == 1
    cells = row.first.locator("td").all_inner_texts()
    assert cells[0] == job and "legacy: FaceModelVersion 2.0 → 3.0" in cells[2]
    assert cells[3] == "done" and "100.0 %" in cells[4]
    row.first.locator("a").click()
    page_a.wait_for_url(f"{base}/jobs/{job}")
    assert "Group model upgrade" in page_a.locator("main").inner_text()

    context_b, page_b = _sign_in(browser, base, *_account(console_server))
    assert page_b.goto(f"{base}/jobs/{job}").status == 404  # another account's job
    page_b.goto(f"{base}/jobs")
    assert page_b.locator("tbody tr").count() == 0 and "No jobs yet." in page_b.inner_text("main")
    for c in (context_a, context_b):
        c.close()
