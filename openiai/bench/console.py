"""``openiai bench console``: page load times of the web console over a large group, and
(``--shots DIR``) a 1280x800 screenshot of each page (``make console-shots``).

A data directory is seeded with one group of ``--persons`` persons: a few LFW people are
enrolled through CreatePerson (real detection and features), and the others are placeholders
written through the store's one face-writing path (``store.faces.add_face``): one face each,
with a copy of an enrolled crop as its picture and a random unit vector as its feature, so that
seeding 10,000 persons takes a minute, not an hour of inference, and a search still finds the
real people. Then a real ``openiai serve``
starts on it, a session signs in, and each page's HTML is fetched ``--repeat`` times on one
keep-alive connection (as a browser does); the table gives the median, p95 and max of the
time to the last byte. Thumbnails are separate requests (timed as their own row).
"""

from __future__ import annotations

import argparse
import base64
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..core.clock import now_ms
from ..core.settings import Settings
from .server import Server

GROUP = "bench"
# LFW people with several photos: the first is enrolled, the second is the search probe.
PEOPLE = ["Colin_Powell", "Tony_Blair", "George_W_Bush", "Gerhard_Schroeder", "Ariel_Sharon",
          "Jennifer_Aniston", "Serena_Williams", "Donald_Rumsfeld"]
BUDGET_MS = 300.0


def _photos(testdata: Path, name: str) -> list[Path]:
    return sorted((testdata / "lfw" / "images" / name).glob("*.jpg"))


def seed(data_dir: Path, persons: int, testdata: Path) -> dict:
    """The group, its persons, a key and an admin token; what the pages need to know."""
    from ..api.dispatch import dispatch
    from ..services import Services
    from ..store.admin_tokens import AdminTokens
    from ..store.faces import add_face
    from ..store.repo import find_group
    from ..store.schema import Face, FaceFeature, Membership, Person

    settings = Settings.from_env(data_dir=data_dir)
    services = Services(settings, with_index=False)
    try:
        secret_id, secret_key = services.keys.create_key("bench")
        account = services.keys.ensure_account("bench")
        dispatch(services, account, "2020-03-03", "CreateGroup",
                 {"GroupId": GROUP, "GroupName": "Bench group", "GroupExDescriptions": ["team"]})
        real = []
        for i, name in enumerate(PEOPLE[:max(1, min(persons, len(PEOPLE)))]):
            photo = _photos(testdata, name)[0]
            dispatch(services, account, "2020-03-03", "CreatePerson", {
                "GroupId": GROUP, "PersonId": f"p{i:05d}", "PersonName": name.replace("_", " "),
                "Image": base64.b64encode(photo.read_bytes()).decode(),
                "PersonExDescriptionInfos": [{"PersonExDescriptionIndex": 0,
                                              "PersonExDescription": f"team {i % 7}"}]})
            real.append(f"p{i:05d}")
        with services.db.read() as s:
            faces = []
            for pid in real:
                face = s.query(Face).join(Person, Person.pk == Face.person_pk).filter(
                    Person.account_id == account, Person.person_id == pid).one()
                vector = s.get(FaceFeature, (face.pk, face.face_model_version)).vector
                faces.append((face.face_model_version, (face.x, face.y, face.width, face.height),
                              np.frombuffer(vector, dtype="<f4").copy(), face.crop_image,
                              np.asarray(face.crop_landmarks)))
            group_pk = find_group(s, account, GROUP).pk
        # The placeholders' vectors are random unit vectors (nobody's face), so that a search
        # for an enrolled person's other photo finds that person, not a thousand copies.
        rng = np.random.default_rng(0)
        start, chunk = len(real), 1000
        for lo in range(start, persons, chunk):
            with services.db.write() as s:
                for i in range(lo, min(persons, lo + chunk)):
                    version, rect, vector, crop, marks = faces[i % len(faces)]
                    vector = rng.standard_normal(vector.size).astype(np.float32)
                    vector /= np.linalg.norm(vector)
                    now = now_ms()
                    person = Person(account_id=account, person_id=f"p{i:05d}",
                                    name=f"Person {i:05d}", gender=0, face_model_version=version,
                                    created_ms=now)
                    s.add(person)
                    s.flush()
                    s.add(Membership(group_pk=group_pk, person_pk=person.pk, created_ms=now,
                                     ex_descriptions=[f"team {i % 7}"]))
                    add_face(s, account_id=account, person_pk=person.pk, model_version=version,
                             rect=rect, features={version: vector}, crop=crop,
                             crop_landmarks=marks)
        token = AdminTokens(data_dir).create()
    finally:
        services.close()
    probe = _photos(testdata, PEOPLE[1])[1]
    return {"secret_id": secret_id, "secret_key": secret_key, "admin_token": token,
            "probe": probe, "last_page": max(1, -(-persons // 50))}


def _sign_in(client, form: dict) -> None:
    page = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/console/login", data={"csrf": token, **form})
    if "/console/login" in str(response.url):
        raise SystemExit("bench console: sign-in failed")


def _time(client, path: str, repeat: int) -> list[float]:
    client.get(path)  # warm (templates compiled, statements prepared)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"bench console: {path} answered {response.status_code}")
    return times


def pages(info: dict) -> list[tuple[str, str, str]]:
    """(who, label, path) of every page timed and photographed."""
    persons = f"/console/groups/{GROUP}/persons"
    return [
        ("account", "groups", "/console/groups"),
        ("account", "group edit", f"/console/groups/{GROUP}"),
        ("account", "persons, page 1", persons),
        ("account", f"persons, last page ({info['last_page']})",
         f"{persons}?page={info['last_page']}"),
        ("account", "persons, find 'Person 0999'", f"{persons}?q=Person+0999"),
        ("account", "person", f"{persons}/p00001"),
        ("account", "delete confirmation", f"/console/groups/{GROUP}/delete"),
        ("account", "search (form)", "/console/search"),
        ("account", "compare (form)", "/console/compare"),
        ("account", "detect (form)", "/console/detect"),
        ("account", "liveness (form)", "/console/liveness"),
        ("admin", "accounts and keys", "/console/admin"),
        ("admin", "dashboard", "/console/dashboard"),
    ]


def measure(server: Server, info: dict, repeat: int) -> list[dict]:
    import httpx

    base = f"http://{server.endpoint}"
    rows = []
    with httpx.Client(base_url=base, follow_redirects=True, timeout=60) as account, \
            httpx.Client(base_url=base, follow_redirects=True, timeout=60) as admin:
        _sign_in(account, {"secret_id": info["secret_id"], "secret_key": info["secret_key"]})
        _sign_in(admin, {"admin_token": info["admin_token"]})
        clients = {"account": account, "admin": admin}
        for who, label, path in pages(info):
            rows.append({"page": label, "path": path, "ms": _time(clients[who], path, repeat)})
        face = re.search(r'/console/faces/(\d+)',
                         account.get(f"/console/groups/{GROUP}/persons").text).group(1)
        rows.append({"page": "thumbnail (one crop)", "path": f"/console/faces/{face}",
                     "ms": _time(account, f"/console/faces/{face}", repeat)})
    return rows


def screenshots(server: Server, info: dict, out: Path, testdata: Path) -> list[Path]:
    import shutil

    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("bench console --shots needs chromium (apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    base = f"http://{server.endpoint}"
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])

        def context():
            return browser.new_context(viewport={"width": 1280, "height": 800})

        def shot(page, name: str) -> None:
            path = out / f"{len(written) + 1:02d}-{name}.png"
            page.screenshot(path=str(path))
            written.append(path)

        ctx = context()
        page = ctx.new_page()
        page.goto(f"{base}/console/login")
        shot(page, "sign-in")
        page.fill("#secret_id", info["secret_id"])
        page.fill("#secret_key", info["secret_key"])
        page.click("form[aria-labelledby=h-key] button")
        page.wait_for_url("**/console/groups")
        for who, label, path in pages(info):
            if who != "account":
                continue
            page.goto(base + path)
            page.wait_for_load_state("load")
            shot(page, re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-"))
        probe, other = info["probe"], _photos(testdata, PEOPLE[0])[1]
        for name, path, files in (
                ("search-results", "/console/search", {"#photo": probe}),
                ("compare-result", "/console/compare", {"#photo_a": _photos(testdata, PEOPLE[1])[0],
                                                        "#photo_b": probe}),
                ("detect-result", "/console/detect", {"#photo": other}),
                ("liveness-result", "/console/liveness", {"#photo": probe})):
            page.goto(base + path)
            for selector, file in files.items():
                page.set_input_files(selector, str(file))
            page.click("form.card button[type=submit]")
            page.wait_for_load_state("load")
            shot(page, name)
        ctx.close()
        ctx = context()
        page = ctx.new_page()
        page.goto(f"{base}/console/login")
        page.fill("#admin_token", info["admin_token"])
        page.click("form[aria-labelledby=h-admin] button")
        page.wait_for_url("**/console/admin")
        page.fill("#account", "new-customer")
        page.click("button:text('Create key')")
        page.wait_for_load_state("load")
        shot(page, "admin-new-key-shown-once")
        page.goto(f"{base}/console/dashboard")
        shot(page, "dashboard")
        ctx.close()
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openiai bench console", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=10_000, help="persons in the group")
    parser.add_argument("--repeat", type=int, default=20, help="timed fetches per page")
    parser.add_argument("--shots", type=Path, help="also write 1280x800 screenshots here")
    parser.add_argument("--data-dir", type=Path, help="seed here (default: a temporary dir)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    testdata = Path(settings.testdata_dir)
    with tempfile.TemporaryDirectory(prefix="openiai-console-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        started = time.perf_counter()
        info = seed(data_dir, args.persons, testdata)
        print(f"seeded {args.persons} persons in group `{GROUP}` in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        server = Server(data_dir)
        server.start(timeout=300, wait_ready=True)
        try:
            rows = measure(server, info, args.repeat)
            print(f"\nconsole page loads (HTML, time to last byte, {args.repeat} fetches each, "
                  f"one keep-alive connection), budget {BUDGET_MS:.0f} ms:")
            print(f"{'page':<34} {'median ms':>9} {'p95 ms':>8} {'max ms':>8}")
            worst = 0.0
            for r in rows:
                ms = sorted(r["ms"])
                p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
                worst = max(worst, ms[-1])
                print(f"{r['page']:<34} {statistics.median(ms):>9.1f} {p95:>8.1f} "
                      f"{ms[-1]:>8.1f}")
            verdict = "within" if worst < BUDGET_MS else "OVER"
            print(f"slowest single load {worst:.1f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")
            if args.shots:
                written = screenshots(server, info, args.shots, testdata)
                print(f"\n{len(written)} screenshots (1280x800) in {args.shots}/:")
                for path in written:
                    print(f"  {path.name}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
