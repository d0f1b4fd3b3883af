"""Reflex configuration only; Cutout's own settings live in app/settings.py."""

import reflex as rx

from app.api.client import allowed_origins
from app.frontend_plugin import CutoutThemePlugin
from app.settings import get_settings

settings = get_settings()

config = rx.Config(
    app_name="app",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    # Only Cutout's own pages may call the backend with the person's cookies: Reflex's default
    # ("*") echoes any origin back with credentials allowed, and lets any site open the websocket.
    cors_allowed_origins=allowed_origins(settings.public_url),
    # Behind a reverse proxy, the client address Reflex reports (and sign-in throttles use).
    trusted_proxy_hops=settings.trusted_proxy_hops,
    plugins=[
        CutoutThemePlugin(theme=rx.theme(appearance="light", accent_color="violet", radius="large"))
    ],
    # Built once with the frontend, served by file: brotli where the browser takes it (HTTPS
    # and localhost), gzip everywhere else.
    frontend_compression_formats=["brotli", "gzip"],
    # No page builds components in the backend, so no page needs every component library's
    # whole namespace up front (all of Radix Themes, every icon) just in case one arrives.
    frontend_lazy_bundled_libraries=True,
    disable_plugins=[rx.plugins.SitemapPlugin],
    # With Redis, every web worker keeps the tabs' state there, so any of them can serve a tab.
    redis_url=settings.redis_url or None,
)
