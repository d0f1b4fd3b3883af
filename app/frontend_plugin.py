"""How the production frontend is bundled: Radix Themes' style sheet with only the colours and
components Cutout's pages use, every icon in one file instead of one request per icon, and
prerendered pages that paint before their scripts load."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from reflex_base import constants
from reflex_components_radix.plugin import RadixThemesPlugin

from app.api.page_paths import EDITOR_SHELL

# The theme's accent, its matching grey (Radix pairs violet with mauve) and every
# color_scheme the pages use; a page asking for another colour would show it uncoloured.
THEME_COLOURS = ("violet", "mauve", "gray", "amber", "blue", "green", "red")

# A Rolldown group (vite.config.js, build.rollupOptions.output.codeSplitting): every lucide
# icon is a tiny module and each became its own file, so a phone on HTTP/1.1 (six
# connections) waited on a dozen more round trips before the page could run.
CHUNK_GROUPS = """
            {
              test: /node_modules[\\\\/]lucide-react[\\\\/]/,
              name: "icons",
            },
"""
GROUPS_ANCHOR = "groups: ["
ROOT_JSX = f"{constants.Dirs.PAGES}/{constants.PageNames.APP_ROOT}"

# Reflex's loader for components built in the backend (`rx.Component` state vars) imports all
# of Radix Themes; Rolldown then bundles that whole namespace with the pieces every page
# imports, about 100 KB compressed that no Cutout page uses. Cutout builds no component in the
# backend, so the loader goes (a page that did would fail loudly, not silently lose styles).
BACKEND_COMPONENT_LOADER = '    "@radix-ui/themes": () => import("@radix-ui/themes"),\n'


# Reflex asks React Router to prerender every page without a parameter; the editor's
# (/editor/<job>) is prerendered too, once, at a placeholder job that app/api/page_paths.py
# serves for every job: the page then paints its shell before its scripts, like the others.
PRERENDER_ALL = '"prerender": true'
PRERENDER_WITH_EDITOR = (
    '"prerender": ({getStaticPaths}) => [...getStaticPaths(), ' + json.dumps(EDITOR_SHELL) + "]"
)
REACT_ROUTER_CONFIG = "react-router.config.js"


def with_editor_prerendered(config: str) -> str:
    if '"prerender"' not in config:  # the dev server prerenders nothing
        return config
    if PRERENDER_ALL not in config:
        raise RuntimeError(
            "react-router.config.js does not prerender every page: Reflex changed its "
            "template (or prerendering is off), update app/frontend_plugin.py"
        )
    return config.replace(PRERENDER_ALL, PRERENDER_WITH_EDITOR, 1)


def with_chunk_groups(vite_config: str) -> str:
    if GROUPS_ANCHOR not in vite_config:
        raise RuntimeError(
            "vite.config.js has no codeSplitting groups: Reflex changed its template, "
            "update app/frontend_plugin.py"
        )
    return vite_config.replace(GROUPS_ANCHOR, GROUPS_ANCHOR + CHUNK_GROUPS, 1)


def without_backend_component_loader(root_jsx: str) -> str:
    if BACKEND_COMPONENT_LOADER not in root_jsx:
        raise RuntimeError(
            "app/root.jsx has no lazy Radix Themes loader: Reflex changed its template, "
            "update app/frontend_plugin.py"
        )
    return root_jsx.replace(BACKEND_COMPONENT_LOADER, "")


@dataclasses.dataclass
class CutoutThemePlugin(RadixThemesPlugin):
    """Radix Themes as Reflex sets it up, minus the 23 colour scales and the components no page
    uses: the style sheet blocks the first paint and is parsed on every first visit."""

    def get_stylesheet_paths(self, **context: Any) -> tuple[str, ...]:
        if not self.enabled:
            return ()
        return (
            "@radix-ui/themes/tokens/base.css",
            *(f"@radix-ui/themes/tokens/colors/{colour}.css" for colour in THEME_COLOURS),
            "@radix-ui/themes/components.css",
            "@radix-ui/themes/utilities.css",
        )

    def pre_compile(self, **context: Any) -> None:
        super().pre_compile(**context)
        context["add_modify_task"]("vite.config.js", with_chunk_groups)
        context["add_modify_task"](ROOT_JSX, without_backend_component_loader)
        context["add_modify_task"](REACT_ROUTER_CONFIG, with_editor_prerendered)

    def post_build(self, **context: Any) -> None:
        # Before Reflex compresses the output, so the .br/.gz files hold the pruned sheet.
        super().post_build(**context)
        prune_built_styles(context["static_dir"])
        paint_before_scripts(context["static_dir"])


# A Radix Themes component's own class (`rt-Button`, `rt-SelectContent`): its code writes the
# name literally, so a name absent from every built script is a component no page can show.
COMPONENT_CLASS = re.compile(r"rt-[A-Z][A-Za-z]*")
# A Radix class for one breakpoint (`.md\:rt-r-size-8` in the sheet): Radix writes it only for a
# prop given a value at that breakpoint, as a literal object key (`size:{initial:"7",md:"8"}`)
# in a page script, since Cutout passes no breakpoint values from the backend.
BREAKPOINT_CLASS = re.compile(r"\.(xs|sm|md|lg|xl)\\:")
BREAKPOINT_KEY = re.compile(r"[{,](xs|sm|md|lg|xl):")
# Blocks whose contents are rules again (the rest, like @font-face and @keyframes, stay whole).
NESTING_AT_RULES = ("@media", "@supports", "@layer", "@container")


def _blocks(css: str) -> list[tuple[str, str | None]]:
    """Top-level items of a style sheet: (prelude, body) for a block, (statement, None) for
    an at-rule ending in `;`. Strings and comments may hold braces; they are skipped whole."""
    items: list[tuple[str, str | None]] = []
    start, depth, i, body_start = 0, 0, 0, 0
    while i < len(css):
        char = css[i]
        if char in "\"'":
            end = css.find(char, i + 1)
            while end != -1 and css[end - 1] == "\\":
                end = css.find(char, end + 1)
            i = len(css) if end == -1 else end + 1
            continue
        if css.startswith("/*", i):
            end = css.find("*/", i + 2)
            i = len(css) if end == -1 else end + 2
            continue
        if char == "{":
            if depth == 0:
                body_start = i + 1
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                items.append((css[start : body_start - 1].strip(), css[body_start:i]))
                start = i + 1
        elif char == ";" and depth == 0:
            items.append((css[start : i + 1].strip(), None))
            start = i + 1
        i += 1
    if css[start:].strip():
        items.append((css[start:].strip(), None))
    return items


def _top_level_split(selectors: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(selectors):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(selectors[start:i])
            start = i + 1
    parts.append(selectors[start:])
    return parts


INNERMOST_GROUP = re.compile(r"(:not)?\(([^()]*)\)")


def _required(selector: str) -> str:
    """The part of a selector every matching element must carry: `:where(.a.b)` requires .a
    and .b, while `:is(.a, .b)` requires neither alone and `:not(.a)` requires no .a."""
    while True:
        reduced = INNERMOST_GROUP.sub(
            lambda m: "" if m[1] or "," in m[2] else " " + m[2] + " ", selector
        )
        if reduced == selector:
            return selector
        selector = reduced


def _can_match(selector: str, used: set[str], breakpoints: set[str]) -> bool:
    outside = _required(selector)
    return all(name in used for name in COMPONENT_CLASS.findall(outside)) and all(
        point in breakpoints for point in BREAKPOINT_CLASS.findall(outside)
    )


def prune_unused_components(css: str, used: set[str], breakpoints: set[str]) -> str:
    """The style sheet without the rules for Radix components that no built script renders,
    nor for breakpoints no script gives a value at."""
    out = []
    for prelude, body in _blocks(css):
        if body is None:
            out.append(prelude)
        elif prelude.startswith(NESTING_AT_RULES):
            inner = prune_unused_components(body, used, breakpoints)
            if inner.strip() or prelude.startswith("@layer"):
                out.append(f"{prelude}{{{inner}}}")
        elif prelude.startswith("@") or "{" in body:
            out.append(f"{prelude}{{{body}}}")
        else:
            kept = [s for s in _top_level_split(prelude) if _can_match(s, used, breakpoints)]
            if kept:
                out.append(f"{','.join(kept)}{{{body}}}")
    return "".join(out)


STATIC_IMPORT = re.compile(r"""(?:from|import)\s*["']\./([\w.-]+\.js)["']""")
ASSET_SCRIPT = re.compile(r"/assets/([\w.-]+\.js)")


def page_scripts(static_dir: Path) -> set[Path]:
    """Every script a page loads up front or on navigation: those the prerendered pages and
    React Router's manifest name, and what they import statically. Chunks only behind a
    dynamic import() (Reflex's loader for components built in the backend, which Cutout
    does not use) are left out."""
    assets = static_dir / "assets"
    named = "".join(page.read_text(encoding="utf-8") for page in static_dir.rglob("*.html"))
    named += "".join(m.read_text(encoding="utf-8") for m in assets.glob("manifest-*.js"))
    todo = {assets / name for name in ASSET_SCRIPT.findall(named)}
    seen: set[Path] = set()
    while todo:
        script = todo.pop()
        if script in seen or not script.is_file():
            continue
        seen.add(script)
        todo.update(assets / name for name in STATIC_IMPORT.findall(script.read_text("utf-8")))
    return seen


def prune_built_styles(static_dir: Path) -> None:
    """Rewrite the built style sheets in place, keeping only components and breakpoints the
    pages can use."""
    used: set[str] = set()
    breakpoints: set[str] = set()
    for source in [*page_scripts(static_dir), *static_dir.rglob("*.html")]:
        text = source.read_text(encoding="utf-8")
        used.update(COMPONENT_CLASS.findall(text))
        if source.suffix == ".js":
            breakpoints.update(BREAKPOINT_KEY.findall(text))
    changed = set()
    for sheet in (static_dir / "assets").glob("*.css"):
        css = sheet.read_text(encoding="utf-8")
        pruned = prune_unused_components(css, used, breakpoints)
        if pruned != css:
            sheet.write_text(pruned, encoding="utf-8")
            changed.add(sheet)
    rename_rewritten(static_dir, changed)


def rename_rewritten(static_dir: Path, changed: set[Path]) -> None:
    """Files under assets/ are cached for a year under names that stand for their content: a
    file rewritten after the build gets its new content's digest in its name, and every page
    and script naming it is updated, which renames those scripts in turn (the style sheet ->
    the root script -> React Router's manifest -> the pages). Otherwise a browser would keep an
    earlier release's sheet, pruned for other pages, under the same name."""
    assets = static_dir / "assets"
    todo = set(changed)
    while todo:
        old = todo.pop()
        digest = hashlib.sha256(old.read_bytes()).hexdigest()[:8]
        new = old.rename(old.with_name(f"{old.stem}-{digest}{old.suffix}"))
        for text in [*assets.glob("*.js"), *static_dir.rglob("*.html")]:
            content = text.read_text(encoding="utf-8")
            if old.name in content:
                text.write_text(content.replace(old.name, new.name), encoding="utf-8")
                # React Router's manifest names itself: renamed once, not for each rewrite.
                if text.parent == assets and text != new:
                    todo.add(text)


# React Router's <Scripts/>: a modulepreload link per script the page needs, and the module
# that imports the route modules and starts the entry (hydration), both written by the build.
MODULE_PRELOAD = re.compile(r'<link rel="modulepreload" href="(/assets/[\w.-]+\.js)"/>')
ENTRY_MODULE = re.compile(r'<script type="module" async="">(.*?)</script>', re.S)
MANIFEST = re.compile(r"window\.__reactRouterManifest=(\{.*\});?\s*$", re.S)
SPA_FALLBACK = "__spa-fallback.html"

PRELOADS_ID = "module-preloads"

# Takes the place of the entry module, as a classic script: after the page's first paint (a
# frame, then a task) it makes the preloads live (a <template>'s links fetch nothing) and adds
# the module. A hidden tab never paints, so it starts at once. It is the same element at the
# same place, and the template is gone before hydration, so React finds the tree it rendered.
START_AFTER_PAINT = (
    "(function(m){{function s(){{var t=document.getElementById('{preloads_id}');"
    "if(t){{document.head.appendChild(t.content);t.remove()}}"
    "var e=document.createElement('script');e.type='module';e.textContent=m;"
    "document.body.appendChild(e)}}"
    "document.visibilityState==='hidden'?s():requestAnimationFrame(function(){{setTimeout(s)}})"
    "}})({module});"
)


def start_scripts_after_paint(html: str) -> str:
    """A prerendered page whose scripts start after its first paint: the module scripts of a
    page (about 220 KB on every page) no longer stand between a phone and the page's text,
    which the HTML already holds; they load while it is read, then the page hydrates."""
    entry = ENTRY_MODULE.search(html)
    links = list(MODULE_PRELOAD.finditer(html))
    if entry is None or not links:
        raise RuntimeError(
            "a prerendered page has no React Router entry module or preloads: Reflex changed "
            "its build, update app/frontend_plugin.py"
        )
    starter = START_AFTER_PAINT.format(preloads_id=PRELOADS_ID, module=json.dumps(entry[1]))
    html = html[: entry.start()] + f"<script>{starter}</script>" + html[entry.end() :]
    inert = "".join(link[0] for link in links)
    html = MODULE_PRELOAD.sub("", html, count=len(links) - 1)
    return MODULE_PRELOAD.sub(lambda _: f'<template id="{PRELOADS_ID}">{inert}</template>', html)


def with_dynamic_route_preloads(html: str, manifest: dict[str, Any]) -> str:
    """The SPA fallback (the page for the routes with a parameter, like /editor/<job>, that
    cannot be prerendered) shows nothing until its route module runs: preload those routes'
    modules with the rest, rather than discovering them one import after another."""
    known = set(MODULE_PRELOAD.findall(html))
    wanted: list[str] = []
    for route in manifest["routes"].values():
        if ":" in (route.get("path") or ""):
            for script in [route["module"], *route.get("imports", [])]:
                if script not in known and script not in wanted:
                    wanted.append(script)
    links = "".join(f'<link rel="modulepreload" href="{script}"/>' for script in wanted)
    last = list(MODULE_PRELOAD.finditer(html))
    if not last:
        raise RuntimeError(
            "the SPA fallback has no modulepreload links: Reflex changed its build, "
            "update app/frontend_plugin.py"
        )
    at = last[-1].end()
    return html[:at] + links + html[at:]


def paint_before_scripts(static_dir: Path) -> None:
    """Rewrite the built pages in place: prerendered pages start their scripts after their
    first paint; the SPA fallback, which has nothing to paint before its scripts run, fetches
    all of them at once."""
    manifests = list((static_dir / "assets").glob("manifest-*.js"))
    for page in static_dir.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        if page.name == SPA_FALLBACK:
            if len(manifests) != 1 or not (found := MANIFEST.match(manifests[0].read_text())):
                raise RuntimeError(
                    "no single React Router manifest: Reflex changed its build, "
                    "update app/frontend_plugin.py"
                )
            html = with_dynamic_route_preloads(html, json.loads(found[1]))
        else:
            html = start_scripts_after_paint(html)
        page.write_text(html, encoding="utf-8")
