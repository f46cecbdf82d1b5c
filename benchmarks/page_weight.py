"""The dashboard's weight: bytes transferred for a first view (empty browser cache) and a repeat
view, as a browser asking for gzip/brotli would receive them through CARTtrack's own stack
(GZipMiddleware for pages, whitenoise's precompressed hashed files from the collected folder).

Called by benchmarks/registry.py after its snapshot; needs STATIC_MANIFEST=True and a
collectstatic run (it runs collectstatic itself). Counts the page, every script and stylesheet it
links, and the figures' JSON; a repeat view refetches only what may not be kept (the page: hashed
static files are immutable for a year, the snapshot's figures URL too).
"""

from __future__ import annotations

import re


def _size(response) -> int:
    if getattr(response, "streaming", False):
        return sum(len(chunk) for chunk in response.streaming_content)
    return len(response.content)


def dashboard_weight() -> dict:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("collectstatic", "--noinput", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(
        username="bench-weight", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client(HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    client.force_login(user)
    page = client.get("/dashboard/")
    assert page.status_code == 200, page.status_code
    html_bytes = _size(page)
    html = page.content
    if page.get("Content-Encoding") == "gzip":
        import gzip

        html = gzip.decompress(html)
    html = html.decode()
    assets = re.findall(r'<script[^>]*\ssrc="([^"]+)"', html)
    assets += re.findall(r'<link[^>]*\shref="([^"]+\.css)"', html)
    assets += re.findall(r'data-figures-url="([^"]+)"', html)
    sizes, raw = {}, {}
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        sizes[url] = (
            _size(response),
            response.get("Content-Encoding", ""),
            response.get("Cache-Control", ""),
        )
        raw[url] = (
            _size(Client(HTTP_ACCEPT_ENCODING="identity").get(url)) if "static" in url else None
        )
    repeat = html_bytes + sum(
        size
        for url, (size, _, cache) in sizes.items()
        if "immutable" not in cache and "max-age=315" not in cache
    )
    return {
        "html": html_bytes,
        "html encoding": page.get("Content-Encoding", ""),
        "assets": sizes,
        "first view": html_bytes + sum(size for size, _, _ in sizes.values()),
        "repeat view": repeat,
    }
