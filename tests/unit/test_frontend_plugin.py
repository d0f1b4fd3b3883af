"""The production build's trimming: the style sheet keeps every rule a page can use and loses
the components no built page script renders; prerendered pages paint before their scripts
load; the generated files it edits are recognised."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from app.frontend_plugin import (
    page_scripts,
    paint_before_scripts,
    prune_built_styles,
    prune_unused_components,
    start_scripts_after_paint,
    with_chunk_groups,
    with_editor_prerendered,
    without_backend_component_loader,
)

EVERY_BREAKPOINT = {"xs", "sm", "md", "lg", "xl"}
SHEET = (
    "@layer a,b;"
    '@font-face{font-family:X;src:url("a{b}.woff2")}'
    ".rt-Button{color:red}"
    ".rt-DataListRoot{display:grid}"
    ".rt-Button,.rt-DataListItem{margin:0}"
    ".rt-r-size-2{font-size:2px}"
    ":where(.rt-DataListRoot,.rt-Button) .x{padding:0}"
    "@media (min-width:520px){.xs\\:rt-r-gap-3{gap:3px}.rt-DataListLabel{width:1px}}"
    "@media (min-width:768px){.rt-DataListValue{width:2px}}"
    "@keyframes rt-spin{from{opacity:0}to{opacity:1}}"
    "@supports (color:color(display-p3 1 1 1)){.rt-Button{color:blue}}"
)


def test_pruning_keeps_used_components_and_everything_that_is_not_a_component() -> None:
    pruned = prune_unused_components(SHEET, {"rt-Button"}, EVERY_BREAKPOINT)
    assert pruned == (
        "@layer a,b;"
        '@font-face{font-family:X;src:url("a{b}.woff2")}'
        ".rt-Button{color:red}"
        ".rt-Button{margin:0}"
        ".rt-r-size-2{font-size:2px}"
        ":where(.rt-DataListRoot,.rt-Button) .x{padding:0}"
        "@media (min-width:520px){.xs\\:rt-r-gap-3{gap:3px}}"
        "@keyframes rt-spin{from{opacity:0}to{opacity:1}}"
        "@supports (color:color(display-p3 1 1 1)){.rt-Button{color:blue}}"
    )


def test_pruning_with_every_component_used_changes_nothing() -> None:
    every = {"rt-Button", "rt-DataListRoot", "rt-DataListItem", "rt-DataListLabel"}
    every.add("rt-DataListValue")
    assert prune_unused_components(SHEET, every, EVERY_BREAKPOINT) == SHEET


def test_pruning_drops_the_classes_of_breakpoints_no_script_gives_a_value_at() -> None:
    sheet = (
        "@media (width>=520px){.xs\\:rt-r-gap-3{gap:3px}}"
        "@media (width>=1280px){:where(.rt-Button.lg\\:rt-r-size-2) .x{width:1px}}"
        ".rt-r-gap-3{gap:3px}"
    )
    assert prune_unused_components(sheet, {"rt-Button"}, {"xs"}) == (
        "@media (width>=520px){.xs\\:rt-r-gap-3{gap:3px}}.rt-r-gap-3{gap:3px}"
    )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_built_sheet_keeps_what_page_scripts_render_not_what_only_a_lazy_chunk_does(
    tmp_path: Path,
) -> None:
    assets = tmp_path / "assets"
    write(tmp_path / "index.html", '<link rel="modulepreload" href="/assets/page-1.js"/>')
    write(
        assets / "manifest-1.js",
        'window.__reactRouterManifest={"routes":{"a":{"module":"/assets/route-1.js"}}}',
    )
    write(
        assets / "page-1.js",
        'import{a}from"./shared-1.js";const c=`rt-Button`,g={gap:{initial:`2`,xs:`3`}};',
    )
    write(assets / "shared-1.js", 'export const a="rt-DataListRoot";')
    write(assets / "route-1.js", 'const l=()=>import("./lazy-1.js");const c="rt-DataListItem";')
    write(assets / "lazy-1.js", 'const c="rt-DataListLabel rt-DataListValue";')
    write(assets / "styles-1.css", SHEET)

    names = {script.name for script in page_scripts(tmp_path)}
    assert names == {"page-1.js", "shared-1.js", "route-1.js"}
    prune_built_styles(tmp_path)
    sheet = next(assets.glob("styles-1-*.css")).read_text()
    assert ".rt-DataListRoot{display:grid}" in sheet
    assert ".rt-Button,.rt-DataListItem{margin:0}" in sheet
    assert "rt-DataListLabel" not in sheet and "rt-DataListValue" not in sheet
    assert ".xs\\:rt-r-gap-3{gap:3px}" in sheet  # the only breakpoint a script gives


def test_a_pruned_sheet_and_every_script_naming_it_get_new_names_pages_follow(
    tmp_path: Path,
) -> None:
    assets = tmp_path / "assets"
    write(assets / "styles-A.css", SHEET)
    write(assets / "root-B.js", 'const l="/assets/styles-A.css",c=`rt-Button`;')
    write(
        assets / "manifest-C.js",
        'm={"url":"/assets/manifest-C.js","root":{"module":"/assets/root-B.js"}}',
    )
    write(assets / "other-D.js", "const untouched=1;")
    write(
        tmp_path / "index.html",
        '<link href="/assets/styles-A.css"/><link href="/assets/manifest-C.js"/>'
        '<link rel="modulepreload" href="/assets/root-B.js"/>',
    )
    prune_built_styles(tmp_path)

    names = sorted(path.name for path in assets.iterdir())
    assert "other-D.js" in names and len(names) == 4
    assert not {"styles-A.css", "root-B.js", "manifest-C.js"} & set(names)
    page = (tmp_path / "index.html").read_text()
    for name in names:
        if name != "other-D.js":
            assert f"/assets/{name}" in page
    # Every name a page or script mentions is a file that exists.
    mentioned = set(ASSET_NAME.findall(page))
    for script in assets.glob("*.js"):
        mentioned |= set(ASSET_NAME.findall(script.read_text()))
    assert mentioned <= set(names)
    assert all(name.count("-") <= 2 for name in names)  # renamed once each
    sheet = next(assets.glob("*.css")).read_text()
    assert ".rt-DataListRoot{display:grid}" not in sheet and ".rt-Button{color:red}" in sheet


ASSET_NAME = re.compile(r"/assets/([\w.-]+)")


def test_generated_files_it_edits_are_recognised_or_the_build_stops() -> None:
    vite = "output: {\n  codeSplitting: {\n    groups: [\n      { test: /env.json/ },\n"
    assert "lucide-react" in with_chunk_groups(vite)
    root = 'const loaders = {\n    "@radix-ui/themes": () => import("@radix-ui/themes"),\n  };'
    assert "import(" not in without_backend_component_loader(root)
    with pytest.raises(RuntimeError, match="Reflex changed"):
        with_chunk_groups("export default {}")
    with pytest.raises(RuntimeError, match="Reflex changed"):
        without_backend_component_loader("const loaders = {};")
    with pytest.raises(RuntimeError, match="Reflex changed"):
        start_scripts_after_paint("<html><body><main>Plans</main></body></html>")
    with pytest.raises(RuntimeError, match="Reflex changed"):
        with_editor_prerendered('export default {"prerender": ["/"]};')
    dev = 'export default {"basename": "/", "ssr": false};'
    assert with_editor_prerendered(dev) == dev  # the dev server prerenders nothing


def test_react_router_prerenders_the_editor_with_every_page_without_a_parameter(
    tmp_path: Path,
) -> None:
    """The rewritten config, as React Router's build reads it (an ES module run by Node)."""
    config = tmp_path / "react-router.config.mjs"
    config.write_text(
        with_editor_prerendered(
            'export default {"basename": "/", "ssr": false, "prerender": true, "build": "build"};'
        )
    )
    script = (
        f"const c = (await import({json.dumps(config.as_uri())})).default;"
        "console.log(JSON.stringify([c.ssr, await c.prerender("
        "{getStaticPaths: () => ['/', '/pricing']})]))"
    )
    node = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "node"
    run = subprocess.run(
        [str(node), "--input-type=module", "-e", script], capture_output=True, text=True, check=True
    )
    assert json.loads(run.stdout) == [False, ["/", "/pricing", "/editor/_"]]


ENTRY = (
    'import "/assets/manifest-M.js";\n'
    'import * as route0 from "/assets/root-R.js";\n'
    'window.__reactRouterRouteModules = {"root":route0};\n'
    'import("/assets/entry.client-E.js");'
)
PRERENDERED = (
    "<html><head><title>Pricing</title>"
    '<link rel="modulepreload" href="/assets/manifest-M.js"/>'
    '<link rel="modulepreload" href="/assets/root-R.js"/>'
    '<link rel="stylesheet" href="/assets/styles-S.css"/></head>'
    "<body><main>Plans</main>"
    f'<script type="module" async="">{ENTRY}</script>'
    "<script>$RC(1)</script></body></html>"
)
FALLBACK = (
    '<html><head><link rel="modulepreload" href="/assets/manifest-M.js"/>'
    '<link rel="modulepreload" href="/assets/root-R.js"/></head>'
    f'<body><script type="module" async="">{ENTRY}</script></body></html>'
)
MANIFEST_JS = (
    "window.__reactRouterManifest="
    + json.dumps(
        {
            "entry": {"module": "/assets/entry.client-E.js", "imports": []},
            "routes": {
                "root": {"path": "", "module": "/assets/root-R.js", "imports": ["/assets/x-X.js"]},
                "routes/[pricing]._index": {"path": "pricing", "module": "/assets/pricing-P.js"},
                "routes/[editor].$[editor_job]._index": {
                    "path": "editor/:editor_job",
                    "module": "/assets/editor-D.js",
                    "imports": ["/assets/root-R.js", "/assets/canvas-C.js"],
                },
            },
        }
    )
    + ";"
)

# What a browser does with the page, in Node: the page's classic scripts run, frames and
# tasks fire in order, and `document` records what gets added and when. A <template>'s links
# are only recorded once its content is put into the document.
BROWSER = """
const html = require("fs").readFileSync(process.argv[2], "utf8");
const events = [], frames = [], tasks = [];
const template = html.match(/<template id="([^"]+)">(.*?)<\\/template>/s);
global.document = {
  visibilityState: process.argv[3],
  createElement: (tag) => ({tag}),
  getElementById: (id) => template && id === template[1] ? {
    content: [...template[2].matchAll(/<link rel="(\\w+)" href="([^"]+)"/g)]
      .map((m) => ({rel: m[1], href: m[2]})),
    remove: () => events.push(["template removed"]),
  } : null,
  head: {appendChild: (c) => c.forEach((e) => events.push(["head", e.rel, e.href]))},
  body: {appendChild: (e) => events.push(["body", e.type, e.textContent])},
};
global.requestAnimationFrame = (f) => { events.push(["frame requested"]); frames.push(f); };
global.setTimeout = (f) => { tasks.push(f); };
for (const m of html.matchAll(/<script>(.*?)<\\/script>/gs)) {
  if (!m[1].startsWith("$RC")) eval(m[1]);
}
events.push(["parsed"]);
while (frames.length || tasks.length) {
  if (frames.length) { frames.shift()(); events.push(["painted"]); }
  else tasks.shift()();
}
console.log(JSON.stringify(events));
"""


def run_page(tmp_path: Path, page: Path, visibility: str) -> list[list[str]]:
    browser = tmp_path / "browser.js"
    browser.write_text(BROWSER)
    node = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "node"
    done = subprocess.run(
        [str(node), str(browser), str(page), visibility],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def built_site(tmp_path: Path) -> Path:
    site = tmp_path / "client"
    write(site / "pricing" / "index.html", PRERENDERED)
    write(site / "__spa-fallback.html", FALLBACK)
    write(site / "assets" / "manifest-M.js", MANIFEST_JS)
    paint_before_scripts(site)
    return site


def test_a_prerendered_page_requests_no_script_before_its_first_paint(tmp_path: Path) -> None:
    site = built_site(tmp_path)
    page = (site / "pricing" / "index.html").read_text()
    # Outside the inert template, no preload and no module: nothing to fetch but the sheet.
    outside = re.sub(r"<template.*?</template>", "", page, flags=re.S)
    assert "modulepreload" not in outside.split("<body>")[0]
    assert 'type="module"' not in outside
    assert "<main>Plans</main>" in page and page.endswith("<script>$RC(1)</script></body></html>")

    events = run_page(tmp_path, site / "pricing" / "index.html", "visible")
    assert events[:3] == [["frame requested"], ["parsed"], ["painted"]]
    # After the paint: every preload the page had, then the very module the build wrote.
    assert events[3:] == [
        ["head", "modulepreload", "/assets/manifest-M.js"],
        ["head", "modulepreload", "/assets/root-R.js"],
        ["template removed"],
        ["body", "module", ENTRY],
    ]


def test_a_hidden_tab_never_paints_so_its_page_starts_at_once(tmp_path: Path) -> None:
    site = built_site(tmp_path)
    events = run_page(tmp_path, site / "pricing" / "index.html", "hidden")
    assert events[0] == ["head", "modulepreload", "/assets/manifest-M.js"]
    assert events[-2:] == [["body", "module", ENTRY], ["parsed"]]


def test_the_spa_fallback_preloads_the_modules_of_routes_with_a_parameter(
    tmp_path: Path,
) -> None:
    site = built_site(tmp_path)
    page = (site / "__spa-fallback.html").read_text()
    preloads = re.findall(r'rel="modulepreload" href="([^"]+)"', page)
    assert preloads == [
        "/assets/manifest-M.js",
        "/assets/root-R.js",
        "/assets/editor-D.js",
        "/assets/canvas-C.js",
    ]
    assert f'<script type="module" async="">{ENTRY}</script>' in page
