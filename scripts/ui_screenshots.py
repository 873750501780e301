"""Screenshots of the MLflow UI in headless Chromium, for docs/img/ (not part of the package).

    mlflow ui --backend-store-uri sqlite:///.../mlflow.db --host 127.0.0.1 --port 5055 &
    python scripts/ui_screenshots.py http://127.0.0.1:5055 EXP_ID PARENT_RUN_ID docs/img

Drives Chromium over the DevTools protocol (aiohttp's websocket client, already installed
with MLflow): opens the experiment page, closes the assistant panel, expands the parent
runs so their children show, and saves PNGs; then the parent run's compare/ artifacts.
Needs Debian's ``chromium`` package.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PORT = 9333
CENTER = """(t) => { const m = [...document.querySelectorAll('body *')].filter(e =>
  e.innerText && e.innerText.trim() === t && e.getBoundingClientRect().width > 0);
  if (!m.length) return null; const r = m[m.length - 1].getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2]; }"""
CLICK_ALL = """(sel) => { const b = [...document.querySelectorAll(sel)]; b.forEach(x => x.click());
  return b.length; }"""


async def session(ws_url: str):
    import aiohttp

    http = aiohttp.ClientSession()
    ws = await http.ws_connect(ws_url, max_msg_size=0)
    ids = itertools.count(1)

    async def call(method: str, **params):
        i = next(ids)
        await ws.send_json({"id": i, "method": method, "params": params})
        while True:
            msg = json.loads((await ws.receive()).data)
            if msg.get("id") == i:
                return msg.get("result", {})

    return http, ws, call


async def shoot(base: str, exp: str, parent: str, out: Path) -> None:
    pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{PORT}/json"))
    page = next(p for p in pages if p["type"] == "page")
    http, ws, call = await session(page["webSocketDebuggerUrl"])

    async def js(expr: str):
        r = await call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        return r.get("result", {}).get("value")

    async def wait_for(text: str, timeout: float = 60) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if await js(f"document.body && document.body.innerText.includes({text!r})"):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"page never showed {text!r}")

    async def save(name: str) -> None:
        shot = await call("Page.captureScreenshot", format="png")
        (out / name).write_bytes(base64.b64decode(shot["data"]))
        print(out / name)

    async def click(selector: str) -> int:
        return await js(f"({CLICK_ALL})({json.dumps(selector)})") or 0

    async def click_text(text: str) -> None:
        """A real mouse click on the innermost element showing exactly ``text``."""
        end = time.time() + 30
        while not (xy := await js(f"({CENTER})({json.dumps(text)})")):
            if time.time() > end:
                raise LookupError(f"no element shows {text!r}")
            await asyncio.sleep(0.5)
        for kind in ("mousePressed", "mouseReleased"):
            await call(
                "Input.dispatchMouseEvent", type=kind, x=xy[0], y=xy[1], button="left",
                clickCount=1,
            )  # fmt: skip
        await asyncio.sleep(2)

    # The 3.17 UI picks its view from the GenAI / Model training switch (this parameter,
    # else the browser's last choice, GenAI at first), not from the experiment's kind tag.
    await call("Page.navigate", url=f"{base}/#/experiments/{exp}?workflowType=machine_learning")
    await wait_for("Run Name")
    await asyncio.sleep(2)
    await click('button[data-component-id="mlflow.assistant.chat_panel.close"]')
    await click('button[data-component-id*="runnamecellrenderer"]')  # expand the parents
    await asyncio.sleep(3)
    await save("mlflow_runs_table.png")
    url = f"{base}/#/experiments/{exp}/runs/{parent}/artifacts?workflowType=machine_learning"
    await call("Page.navigate", url=url)
    await click_text("compare")
    await click_text("report.md")
    await asyncio.sleep(2)
    await save("mlflow_compare_artifact.png")
    await click_text("metrics_vs_setting.png")
    await asyncio.sleep(2)
    await save("mlflow_compare_figure.png")
    await ws.close()
    await http.close()


def main(base: str, exp: str, parent: str, out: str) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    profile = tempfile.mkdtemp()
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={profile}", f"--remote-debugging-port={PORT}",
        "--window-size=1600,1000", "about:blank",
    ]  # fmt: skip
    browser = subprocess.Popen(["chromium", *flags], stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        asyncio.run(shoot(base, exp, parent, Path(out)))
    except BaseException:
        print("failed; the page showed what is in the last screenshot", file=sys.stderr)
        raise
    finally:
        browser.terminate()
        browser.wait(timeout=30)


if __name__ == "__main__":
    main(*sys.argv[1:5])
