"""The built site in a real browser (headless Chromium over the DevTools protocol): the
index lists the reproductions and filters them, a reproduction's claims table has its
rows and badges, every figure loads, and no page logs an error. Skipped where no
Chromium is installed (``.ci/run`` installs Debian's ``chromium``)."""

from __future__ import annotations

import os

import pytest

from regbench.site.browser import Chromium, find_chromium
from site_store import SiteStore, build_store, claims_json

# .ci/run installs Chromium and sets REGBENCH_REQUIRE_CHROMIUM=1: there a missing browser
# fails the test instead of skipping it
pytestmark = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("REGBENCH_REQUIRE_CHROMIUM"),
    reason="no Chromium to drive (apt-get install chromium, or set REGBENCH_CHROMIUM); "
    ".ci/run installs it",
)

IMAGES = "[...document.images].map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SiteStore:
    return build_store(tmp_path_factory.mktemp("site_browser"))


def test_the_site_in_headless_chromium(store: SiteStore):
    expected = claims_json(store)["claims"]
    with Chromium(width=1280, height=900) as browser:
        browser.open((store.site / "index.html").as_uri())
        names = browser.evaluate(
            "[...document.querySelectorAll('#reproductions tbody tr')].map(r => "
            "r.querySelector('a').textContent)"
        )
        assert names == ["two_inputs"]
        visible = (
            "(q => { const f = document.getElementById('filter'); f.value = q;"
            " f.dispatchEvent(new Event('input'));"
            " return [...document.querySelectorAll('#reproductions tbody tr')]"
            ".filter(r => !r.hidden).length; })"
        )
        assert browser.evaluate(f"{visible}('two_inputs tiny')") == 1
        assert browser.evaluate(f"{visible}('no such reproduction')") == 0
        assert browser.evaluate("document.getElementById('nomatch').hidden") is False

        browser.open(browser.evaluate("document.querySelector('#reproductions a').href"))
        badges = browser.evaluate(
            "[...document.querySelectorAll('#claims-table tbody tr.claim')].map(r => "
            "r.querySelector('td .badge').textContent)"
        )
        assert badges == [c.get("family_status") or c["status"] for c in expected]
        images = browser.evaluate(IMAGES)
        assert [src for src, _, _ in images] == ["two_inputs.svg"]
        assert all(complete and width > 0 for _, complete, width in images), images
        csv = browser.evaluate("document.querySelector('a[download]').href")
        assert csv == (store.site / "r" / "two_inputs-tiny" / "values.csv").as_uri()
        errors = list(browser.errors)

        pages = ["history.html", *[f"c/{p.name}/index.html" for p in (store.site / "c").iterdir()]]
        for page in pages:
            browser.open((store.site / page).as_uri())
            assert browser.evaluate("document.querySelector('h1').textContent")
            assert all(w > 0 for _, _, w in browser.evaluate(IMAGES)), page
            errors += browser.errors
    assert errors == []
