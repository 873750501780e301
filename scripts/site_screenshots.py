"""Screenshots for the README (docs/img/), in headless Chromium (not part of the package).

    regbench site                                          # builds reports/site/
    python scripts/site_screenshots.py reports/site docs/img --page variance_shift-cpu

saves ``site_index.png`` and ``site_reproduction.png`` (the page of ``--page``, a
``r/<name>-<scale>`` folder of the site). With an MLflow UI running,

    mlflow ui --backend-store-uri sqlite:///.../mlflow.db --host 127.0.0.1 --port 5055 &
    python scripts/site_screenshots.py reports/site docs/img --mlflow http://127.0.0.1:5055 \
        --experiment EXP_ID

also saves ``mlflow_group_by_config.png``: that experiment's runs table grouped by the tag
``regbench.config_id`` (seeds aggregated per configuration, the parents' rows expanded).
Needs Debian's ``chromium`` package; drives it with :mod:`regbench.site.browser`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from regbench.site.browser import Chromium

# the centre of the innermost visible element that shows exactly this text
CENTER = """(t) => { const m = [...document.querySelectorAll('body *')].filter(e =>
  e.innerText && e.innerText.trim() === t && e.getBoundingClientRect().width > 0);
  if (!m.length) return null; const r = m[m.length - 1].getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2]; }"""

# empty a React-controlled input found by its placeholder, and focus it
CLEAR = """(p => { const i = document.querySelector(`input[placeholder="${p}"]`);
  const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
  set.call(i, ''); i.dispatchEvent(new Event('input', {bubbles: true})); i.focus(); })(%s)"""


def click_text(browser: Chromium, text: str, timeout: float = 60) -> None:
    end = time.time() + timeout
    while not (xy := browser.evaluate(f"({CENTER})({json.dumps(text)})")):
        if time.time() > end:
            raise LookupError(f"no element shows {text!r}")
        time.sleep(0.5)
    browser.click(*xy)
    time.sleep(1.5)


def wait_for(browser: Chromium, text: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not browser.evaluate(f"document.body && document.body.innerText.includes({text!r})"):
        if time.time() > end:
            raise TimeoutError(f"the page never showed {text!r}")
        time.sleep(0.5)


def site_shots(site: Path, out: Path, page: str | None) -> None:
    with Chromium(width=1400, height=900) as browser:
        browser.open((site / "index.html").as_uri())
        print(browser.screenshot(out / "site_index.png"))
        if page is None:
            page = browser.evaluate("document.querySelector('#reproductions a').href")
            page = page.split("/r/")[1].split("/")[0]
        browser.open((site / "r" / page / "index.html").as_uri())
        print(browser.screenshot(out / "site_reproduction.png", full_page=True, max_height=2600))
        if browser.errors:
            raise SystemExit(f"the pages logged errors: {browser.errors}")


def key(browser: Chromium, name: str, modifiers: int = 0) -> None:
    for kind in ("keyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", type=kind, key=name, modifiers=modifiers)


def widen_column(browser: Chromium, header: str, by: float) -> None:
    """Drag the right edge of a column header (ag-grid's resize handle) by ``by`` pixels."""
    box = browser.evaluate(
        "(t => { const h = [...document.querySelectorAll('.ag-header-cell')].find(e =>"
        " e.innerText.trim().startsWith(t)); if (!h) return null;"
        " const r = h.getBoundingClientRect(); return [r.right - 2, r.y + r.height / 2]; })"
        f"({json.dumps(header)})"
    )
    if box is None:
        return
    x, y = box
    browser.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left",
                 clickCount=1)  # fmt: skip
    for step in range(1, 11):
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x + by * step / 10, y=y,
                     button="left", buttons=1)  # fmt: skip
    browser.call("Input.dispatchMouseEvent", type="mouseReleased", x=x + by, y=y, button="left",
                 clickCount=1)  # fmt: skip
    time.sleep(1)


def mlflow_shot(base: str, experiment: str, out: Path, metrics=("test/acc", "val/acc")) -> None:
    """The runs table grouped by ``regbench.config_id``, with ``metrics`` as columns (the
    group rows show their average over seeds)."""
    with Chromium(width=1600, height=1000, timeout=180) as browser:
        browser.open(f"{base}/#/experiments/{experiment}?workflowType=machine_learning")
        wait_for(browser, "Run Name")
        time.sleep(2)
        browser.evaluate(
            "[...document.querySelectorAll('button[data-component-id="
            '"mlflow.assistant.chat_panel.close"]\')].forEach(b => b.click())'
        )
        click_text(browser, "Columns")
        for column in ("Dataset", "Source", "Models"):  # room for the metrics
            click_text(browser, column)
        for metric in metrics:
            browser.evaluate(CLEAR % json.dumps("Search columns"))
            browser.type_text(metric)
            time.sleep(1)
            click_text(browser, metric)
        key(browser, "Escape")
        click_text(browser, "Group by")
        browser.type_text("config_id")
        time.sleep(1)
        click_text(browser, "regbench.config_id")
        key(browser, "Escape")
        wait_for(browser, "Group by: regbench.config_id")
        time.sleep(2)
        widen_column(browser, "Run Name", 260)
        for metric in metrics:
            widen_column(browser, metric, 50)
        # the pointer away from the table: no hover tooltip in the picture
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=900, y=960)
        time.sleep(2)
        print(browser.screenshot(out / "mlflow_group_by_config.png"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("site", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--page", help="the reproduction page to show: <name>-<scale>")
    p.add_argument("--mlflow", help="a running MLflow UI, e.g. http://127.0.0.1:5055")
    p.add_argument("--experiment", help="the experiment id to show grouped")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    site_shots(args.site.resolve(), args.out, args.page)
    if args.mlflow:
        mlflow_shot(args.mlflow, args.experiment, args.out)


if __name__ == "__main__":
    main()
