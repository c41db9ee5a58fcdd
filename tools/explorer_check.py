"""Open a medprobe explorer page (results/explorer/{dataset}/index.html) from disk in headless Chromium and use it as a
reader would: wait for the first layout, pick another model and setting, hover a point and read its tooltip (the
thumbnail and the file name), box-select a region and read the listed files and the CSV back. Fails on any
JavaScript error in the console. Prints one JSON object with the timings.

    python tools/explorer_check.py results/explorer/brainmr_demo/index.html --shots shots/

Needs Chromium and its driver (Debian: apt-get install chromium chromium-driver) and `pip install selenium`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_screenshot import driver_for, wait_for  # noqa: E402

# The screen position of data point i in the plot's canvas (Bokeh's own scales), to move the mouse there.
POINT_ON_SCREEN = """
const i = arguments[0], E = window.MEDPROBE_EXPLORER;
const plot = Bokeh.index.find_one(E.plot);
const sx = plot.frame.x_scale.compute(E.source.data.x[i]), sy = plot.frame.y_scale.compute(E.source.data.y[i]);
const rect = plot.canvas_view.el.getBoundingClientRect();
return [rect.left + sx, rect.top + sy, sx, sy];
"""


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def check_explorer(page: Path, shots: Path | None = None, *, width: int = 1400, height: int = 1000,
                   timeout: float = 120.0) -> dict:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    driver = driver_for(None, None, width, height, console=True)
    result: dict = {}
    try:
        started = time.monotonic()
        driver.get(page.resolve().as_uri())
        wait_for(driver, "const E = window.MEDPROBE_EXPLORER; return E && E.state && E.state.switch_ms !== null",
                 timeout=timeout, what="the first layout drawn")
        result["load_s"] = round(time.monotonic() - started, 3)
        result["first_draw_ms"] = driver.execute_script("return window.MEDPROBE_EXPLORER.state.switch_ms")
        models = driver.execute_script("return window.MEDPROBE_EXPLORER.models.map(m => m.name)")
        settings = driver.execute_script(
            "const E = window.MEDPROBE_EXPLORER; return [E.nn_select.options, E.md_select.options]")
        # another model, and a setting that is not the first
        target_model = models[1] if len(models) > 1 else models[0]
        target = (settings[0][-1], settings[1][-1])
        started = time.monotonic()
        driver.execute_script("const E = window.MEDPROBE_EXPLORER; E.state.switch_ms = null; "
                              "E.model_select.value = arguments[0];", target_model)
        wait_for(driver, "return window.MEDPROBE_EXPLORER.state.switch_ms !== null", timeout=timeout,
                 what=f"model {target_model} drawn")
        result["model_switch_s"] = round(time.monotonic() - started, 3)
        result["model_switch_draw_ms"] = driver.execute_script("return window.MEDPROBE_EXPLORER.state.switch_ms")
        started = time.monotonic()
        driver.execute_script("const E = window.MEDPROBE_EXPLORER; E.state.switch_ms = null; "
                              "E.nn_select.value = arguments[0]; E.md_select.value = arguments[1];", *target)
        wait_for(driver, "return window.MEDPROBE_EXPLORER.state.switch_ms !== null", timeout=timeout,
                 what="the setting drawn")
        result["setting_switch_s"] = round(time.monotonic() - started, 3)
        state = driver.execute_script("const s = window.MEDPROBE_EXPLORER.state; return {model: s.model, "
                                      "setting: s.setting, n_folds: s.loaded[s.model].n_folds}")
        result["state"] = state
        assert [float(v) for v in state["setting"]] == [float(v) for v in target], (state, target)

        # hover a point with a thumbnail: its tooltip shows that thumbnail and file name
        index = driver.execute_script(
            "const d = window.MEDPROBE_EXPLORER.source.data; "
            "for (let i = 0; i < d.x.length; i++) if (d.thumb[i] && isFinite(d.x[i])) return i; return -1")
        assert index >= 0, "no point with a thumbnail"
        expected = driver.execute_script("const d = window.MEDPROBE_EXPLORER.source.data; "
                                         "return [d.file[arguments[0]], d.thumb[arguments[0]]]", index)
        x, y, _sx, _sy = driver.execute_script(POINT_ON_SCREEN, index)
        actions = ActionBuilder(driver)
        actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
        actions.perform()
        tooltip = wait_for(driver, """
            const found = [];
            const visit = root => { for (const el of root.querySelectorAll('*')) {
              if (el.classList && el.classList.contains('medprobe-hover')) found.push(el);
              if (el.shadowRoot) visit(el.shadowRoot); } };
            visit(document);
            const shown = found.filter(el => el.offsetParent !== null || el.getClientRects().length);
            return shown.length ? shown.map(el => [el.innerText, Array.from(el.querySelectorAll('img')).map(i =>
                [i.getAttribute('src'), i.naturalWidth])]) : null""", timeout=20, what="the hover tooltip")
        texts = " ".join(t[0] for t in tooltip)
        images = [img for t in tooltip for img in t[1]]
        result["hover"] = {"expected_file": expected[0], "tooltip": texts[:300], "images": images[:3]}
        assert any(expected[1] == src and natural > 0 for src, natural in images), (expected, images)
        assert expected[0] in texts, (expected, texts)
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(shots / "hover.png"))

        # box-select the points near the hovered one (the selection the lasso and box tools make) and read them back
        chosen = driver.execute_script("""
            const E = window.MEDPROBE_EXPLORER, d = E.source.data, i = arguments[0];
            const xs = Array.from(d.x).filter(isFinite), ys = Array.from(d.y).filter(isFinite);
            const w = (Math.max(...xs) - Math.min(...xs)) * 0.15, h = (Math.max(...ys) - Math.min(...ys)) * 0.15;
            const rows = [];
            for (let j = 0; j < d.x.length; j++)
              if (Math.abs(d.x[j] - d.x[i]) < w && Math.abs(d.y[j] - d.y[i]) < h) rows.push(j);
            E.source.selected.indices = rows;
            return rows.map(j => d.file[j]);""", index)
        listed = wait_for(driver, "const t = window.MEDPROBE_EXPLORER.listing.text; "
                                  "return t.includes('selected') ? t : null", what="the selection listed")
        csv_text = driver.execute_script("return window.MEDPROBE_EXPLORER.selectionCSV()")
        rows = [line for line in csv_text.splitlines()[1:] if line]
        read_back = [json.loads(row.split('","')[0] + '"') if row.startswith('"') else row for row in rows]
        result["selection"] = {"selected": len(chosen), "csv_rows": len(rows), "listed_chars": len(listed)}
        assert sorted(read_back) == sorted(chosen), (read_back[:5], chosen[:5])
        assert f"{len(chosen)} selected" in listed
        # the selection and a pinned image survive a change of model
        driver.execute_script("const E = window.MEDPROBE_EXPLORER; E.pin([arguments[0]]); E.state.switch_ms = null; "
                              "E.model_select.value = arguments[1];", index, models[0])
        wait_for(driver, "return window.MEDPROBE_EXPLORER.state.switch_ms !== null", what="switch back")
        kept = driver.execute_script("const E = window.MEDPROBE_EXPLORER; return [E.source.selected.indices.length, "
                                     "E.pinned.data.file, E.pinned.data.x[0], E.source.data.x[arguments[0]]]", index)
        assert kept[0] == len(chosen) and kept[1] == [expected[0]] and kept[2] == kept[3], kept
        if shots:
            driver.save_screenshot(str(shots / "selection.png"))
        errors = console_errors(driver)
        result["console_errors"] = errors
        assert not errors, errors
        result["ok"] = True
        return result
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--shots", type=Path)
    args = parser.parse_args()
    print(json.dumps(check_explorer(args.page, args.shots)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
