"""Open a `snakemake --report` in headless Chromium and check that it renders: the methods text on the landing page,
every figure shown as an image with pixels on screen, every HTML table with rows, every explorer page with its first
layout drawn. Screenshots go to --out.

    python tools/report_screenshot.py report.html --out report_shots/
    unzip report.zip && python tools/report_screenshot.py report/report.html --out report_shots/

Needs Chromium and its driver (Debian: apt-get install chromium chromium-driver) and `pip install selenium`.
Each result is displayed the way the report's own "view" button does (the report app's `setView` with the result's
embedded data URI, or its file beside the page in a report.zip). Prints one line per result and exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


def driver_for(chromium: str | None, chromedriver: str | None, width: int, height: int, console: bool = False):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = chromium or shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    chromedriver = chromedriver or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not chromium or not Path(chromedriver).exists():
        raise SystemExit("needs Chromium and chromedriver: apt-get install chromium chromium-driver "
                         f"(found browser {chromium!r}, driver {chromedriver!r})")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}", "--allow-file-access-from-files"):
        options.add_argument(flag)
    if console:  # keep the page's console messages for driver.get_log("browser")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


def wait_for(driver, script: str, *args, timeout: float = 30.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what or script}")


def ink(png: Path) -> float:
    """Share of screenshot pixels that are not (near) white: 0 for a blank page."""
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.uint8)
    return float((pixels < 235).mean())


def check_report(report: Path, out: Path, methods_text: str, chromium: str | None = None,
                 chromedriver: str | None = None, width: int = 1400, height: int = 1000) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    driver = driver_for(chromium, chromedriver, width, height)
    rows: list[dict] = []
    try:
        driver.get(report.resolve().as_uri())
        wait_for(driver, "return typeof app !== 'undefined' && typeof results !== 'undefined'", what="the report app")
        wait_for(driver, f"return document.body.innerText.includes({json.dumps(methods_text)})",
                 what=f"the methods text {methods_text!r} on the landing page")
        driver.save_screenshot(str(out / "landing.png"))
        rows.append({"result": "(landing page)", "kind": "text", "ok": True,
                     "detail": f"methods text found; ink {ink(out / 'landing.png'):.3f}"})
        entries = driver.execute_script(
            "return Object.entries(results).map(([path, e]) => [path, e.mime_type, e.category || ''])")
        for index, (path, mime, _category) in enumerate(sorted(entries)):
            shot = out / f"{index:03d}_{path.replace('/', '_')}.png"
            if mime in IMAGE_TYPES:
                driver.execute_script("app.setView({content: 'img', contentPath: results[arguments[0]].data_uri, "
                                      "resultPath: arguments[0]})", path)
                size = wait_for(driver, "const uri = new URL(results[arguments[0]].data_uri, document.baseURI).href; "
                                        "const i = Array.from(document.images).find(x => x.src === uri); "
                                        "return i && i.complete && i.naturalWidth > 0 && "
                                        "[i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]",
                                path, what=f"{path} to show")
                element = driver.execute_script(
                    "const uri = new URL(results[arguments[0]].data_uri, document.baseURI).href; "
                    "return Array.from(document.images).find(x => x.src === uri)", path)
                element.screenshot(str(shot))  # what the browser drew for this figure, nothing else
                share = ink(shot)
                ok = size[2] > 100 and share > 0.01
                rows.append({"result": path, "kind": "figure", "ok": ok,
                             "detail": f"{size[0]}x{size[1]} px, shown {size[2]:.0f} px wide, "
                                       f"{share:.3f} of its rendered pixels not white"})
            elif mime == "text/html":
                driver.execute_script("app.setView({content: 'html', contentPath: results[arguments[0]].data_uri, "
                                      "resultPath: arguments[0]})", path)
                wait_for(driver, "return document.querySelector('#app iframe') !== null", what=f"{path} frame")
                frame = driver.find_element("css selector", "#app iframe")
                driver.switch_to.frame(frame)
                # a table page shows its rows; an explorer page (medprobe.explorer) draws its first layout
                rows_in_table = wait_for(driver, "const E = window.MEDPROBE_EXPLORER; "
                                         "if (E && E.state && E.state.switch_ms !== null) return -1; "
                                         "return document.querySelectorAll('table tr').length",
                                         what=f"the table or explorer in {path}")
                explorer = rows_in_table == -1
                if explorer:
                    drawn = driver.execute_script("const E = window.MEDPROBE_EXPLORER; return [E.state.model, "
                                                  "Array.from(E.source.data.x).filter(isFinite).length, "
                                                  "E.state.errors]")
                driver.switch_to.default_content()
                frame.screenshot(str(shot))
                if explorer:
                    rows.append({"result": path, "kind": "explorer", "ok": drawn[1] > 0 and not drawn[2],
                                 "detail": f"model {drawn[0]}: {drawn[1]} points drawn; errors {drawn[2]}"})
                else:
                    rows.append({"result": path, "kind": "table", "ok": rows_in_table >= 1,
                                 "detail": f"{rows_in_table - 1} row(s) rendered"})
            else:
                rows.append({"result": path, "kind": mime, "ok": True, "detail": "offered as a download"})
    finally:
        driver.quit()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("report_shots"))
    parser.add_argument("--methods-text", default="LinearSVC", help="text the landing page must show")
    parser.add_argument("--chromium")
    parser.add_argument("--chromedriver")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = check_report(args.report, args.out, args.methods_text, args.chromium, args.chromedriver)
    for row in rows:
        print(f"{'OK  ' if row['ok'] else 'FAIL'} {row['kind']:<7} {row['result']}: {row['detail']}")
    figures = sum(row["kind"] == "figure" for row in rows)
    tables = sum(row["kind"] == "table" for row in rows)
    failed = sum(not row["ok"] for row in rows)
    print(f"{figures} figure(s), {tables} table(s) shown, {failed} failed, in {time.perf_counter() - started:.1f} s; "
          f"screenshots in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
