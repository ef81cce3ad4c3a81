"""The console's files: served by the gateway itself, with a strict policy, and outside the API schema."""

from __future__ import annotations

import re

import httpx

from gateway.console import CONTENT_SECURITY_POLICY, STATIC_DIR


async def test_the_console_index_is_served_at_both_paths_with_strict_headers(client: httpx.AsyncClient) -> None:
    for path in ("/console", "/console/"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/console/app.js">' in response.text
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    policy = CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy


async def test_every_asset_is_served_with_its_type_and_the_same_headers(client: httpx.AsyncClient) -> None:
    files = sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file())
    assert "app.js" in files
    assert "pages/dashboard.js" in files
    for name in files:
        response = await client.get(f"/console/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, name
        assert response.headers["x-frame-options"] == "DENY", name
        if name.endswith(".js"):
            assert response.headers["content-type"].startswith("text/javascript"), name


async def test_nothing_outside_the_console_directory_is_served(client: httpx.AsyncClient) -> None:
    for path in ("/console/../app.py", "/console/%2e%2e/__init__.py", "/console/missing.js", "/console/..%2fapp.py"):
        response = await client.get(path)
        assert response.status_code == 404, path


async def test_the_console_is_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert not [path for path in schema["paths"] if path.startswith("/console")]


async def test_the_admin_api_still_wants_its_token(client: httpx.AsyncClient) -> None:
    """The console adds no way around the guard: its pages are public, the data is not."""
    assert (await client.get("/admin/customers")).status_code == 401


def _sources() -> dict[str, str]:
    return {
        p.relative_to(STATIC_DIR).as_posix(): p.read_text(encoding="utf-8")
        for p in STATIC_DIR.rglob("*")
        if p.suffix in {".html", ".js", ".css"}
    }


def test_no_asset_comes_from_another_origin_and_no_script_is_inline() -> None:
    for name, text in _sources().items():
        assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text), name
        assert not re.search(r"""(import|from)\s*\(?\s*["'](https?:)?//""", text), name
        assert "@import" not in text, name
        if name.endswith(".html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {name}"
            assert " style=" not in text, name
            assert not re.search(r"\son[a-z]+=", text), name


def test_the_token_is_kept_in_session_storage_only() -> None:
    sources = _sources()
    for name, text in sources.items():
        assert not re.search(r"localStorage\s*[.\[]", text), name
        assert "document.cookie" not in text, name
        assert ".innerHTML" not in text, name  # text goes in as text nodes
    api = sources["api.js"]
    assert "sessionStorage.setItem" in api
    assert "Authorization: `Bearer ${token}`" in api
    assert 'credentials: "omit"' in api
