"""The customers' API page as the gateway serves it: what it says comes from the code, the endpoint
comes from a trusted source only, and nothing a client sends is written back into it."""

from __future__ import annotations

import ast
import html
import re
from typing import Any

import httpx
import pytest
from litestar import Litestar

from gateway import errors
from gateway.apidoc import CONTENT_SECURITY_POLICY, content
from gateway.apidoc.page import CLIENTS, PLACEHOLDER_URL, STATIC_DIR, ApiPage, endpoint_base
from gateway.app import create_app
from gateway.lifecycle import OrderStatus, RefillStatus
from gateway.orders.validation import SERVICE_TYPES
from gateway.v2.actions import ACTIONS
from tests.apidoc.pagetext import documented_answers, pre_blocks
from tests.conftest import make_settings, serving

# Host headers a client may send; none of them may reach the page or the clients as written.
HOSTILE_HOSTS = [
    "evil.example\r\nSet-Cookie: session=stolen",
    "evil.example\nX-Injected: 1",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "evil.example/<script>",
    "evil.example';system('id');'",
    'evil.example"+__import__("os").system("id")+"',
    "a" * 100_000,
    ("a" * 63 + ".") * 10 + "com",
    "пример.рф",
    "\u212aelvin.example",  # lower-cases to an ASCII k
    "evil\u202e.example",
    "evil.example:0",
    "evil.example:65536",
    "evil.example:80:80",
    "user:pass@evil.example",
    "[::1",
    "[not-ipv6]:80",
    "evil.example#frag",
    "",
    " ",
    "\x00",
]
MARKERS = ("<script", "onerror", "Set-Cookie", "X-Injected", "system(", "__import__", "evil", "aaaaaaaaaa", "пример")


@pytest.fixture(scope="module")
def page() -> ApiPage:
    return ApiPage.from_settings(make_settings())


def text_of(markup: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, spaces collapsed."""
    inline = re.sub(r"</?(code|strong|a|em)\b[^>]*>", "", markup)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", inline)))


# --- what the page says --------------------------------------------------------------------------


def test_every_action_and_each_of_its_forms_is_documented(page: ApiPage) -> None:
    markup = page.html("http://panel.example")
    documented = {doc.action for doc in page.actions}
    assert documented == set(ACTIONS)
    slugs = [doc.slug for doc in page.actions]
    for form in ("status-multi", "refill-multi", "refill-status-multi"):
        assert form in slugs
    for doc in page.actions:
        assert f'data-action="{doc.action}"' in markup
        assert f'id="{doc.slug}"' in markup
        assert f'id="answer-{doc.slug}"' in markup


def test_the_service_types_table_is_the_validations_table(page: ApiPage) -> None:
    assert [t.name for t in page.service_types] == list(SERVICE_TYPES)
    markup = page.html("http://panel.example")
    table = markup[markup.index('class="types"') : markup.index("</table>", markup.index('class="types"'))]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    assert len(rows) == len(SERVICE_TYPES)
    for row, (name, spec) in zip(rows, SERVICE_TYPES.items(), strict=True):
        cells = re.findall(r"<td>(.*?)</td>", row)
        assert html.unescape(re.sub(r"<[^>]+>", "", cells[0])) == name
        assert re.findall(r"<code>(.*?)</code>", cells[1]) == list(spec.required), name
        assert re.findall(r"<code>(.*?)</code>", cells[2]) == list(spec.optional), name
        for field in (*spec.required, *spec.optional):
            assert field in content.FIELD_MEANINGS, f"no meaning on the page for {field}"


def test_a_new_field_in_the_validation_without_a_meaning_on_the_page_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(content, "FIELD_MEANINGS", {k: v for k, v in content.FIELD_MEANINGS.items() if k != "groups"})
    with pytest.raises(LookupError, match="groups"):
        content.service_type_docs()


def test_every_error_string_of_the_code_is_on_the_page_exactly_once(page: ApiPage) -> None:
    text = text_of(page.html("http://panel.example"))
    strings = [value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)]
    assert len(strings) >= 13
    for message in strings:
        assert message in text, message
    messages = [doc.message for doc in page.errors]
    assert len(messages) == len(set(messages))
    for message in (errors.quantity_less_than(10), errors.quantity_more_than(10000), errors.incorrect("comments")):
        assert message in messages
    assert all(doc.when for doc in page.errors), [doc.message for doc in page.errors if not doc.when]


def test_the_idempotency_extension_is_documented_with_its_exact_strings(page: ApiPage) -> None:
    markup = page.html("http://panel.example")
    section = text_of(markup[markup.index('id="idempotency-section"') :])
    for expected in (
        "Idempotency-Key",
        "idempotency_key",
        "1 to 64 printable ASCII characters",
        "24 hours",
        "Idempotency key reused with different parameters",
        "Incorrect idempotency key",
    ):
        assert expected in section, expected
    for action in ("add", "refill", "cancel"):
        params = next(doc for doc in page.actions if doc.slug == action).params
        assert "idempotency_key" in [p.name for p in params], action
    errors_text = [doc.message for doc in page.errors]
    assert "Idempotency key reused with different parameters" in errors_text
    assert "Incorrect idempotency key" in errors_text


def test_the_idempotency_strings_come_from_gateway_errors() -> None:
    """Written once, in gateway/errors.py: no file of the page spells them out."""
    for literal in (errors.IDEMPOTENCY_KEY_REUSED, errors.INCORRECT_IDEMPOTENCY_KEY, errors.IDEMPOTENCY_IN_PROGRESS):
        holders = [p.name for p in (STATIC_DIR.parent).rglob("*.py") if literal in p.read_text("utf-8")]
        assert holders == [], (literal, holders)
    messages = [doc.message for doc in content.error_docs(0)]
    for literal in (errors.IDEMPOTENCY_KEY_REUSED, errors.INCORRECT_IDEMPOTENCY_KEY, errors.IDEMPOTENCY_IN_PROGRESS):
        assert messages.count(literal) == 1


def test_the_idempotency_window_follows_the_setting() -> None:
    assert content.idempotency(make_settings(idempotency_ttl_seconds=3600)).window_seconds == 3600
    assert content.idempotency(make_settings()).window_seconds == 86400
    assert [content.duration(s) for s in (86400, 3600, 7200, 172800, 90, 60, 1)] == [
        "24 hours",
        "1 hour",
        "2 hours",
        "2 days",
        "90 seconds",
        "1 minute",
        "1 second",
    ]


def test_the_statuses_are_the_lifecycles(page: ApiPage) -> None:
    text = text_of(page.html("http://panel.example"))
    assert f"Order statuses: {', '.join(OrderStatus)}." in text
    assert f"Refill statuses: {', '.join(RefillStatus)}." in text


def test_example_answers_are_in_the_default_dialect() -> None:
    documented = documented_answers(ApiPage.from_settings(make_settings()).html("http://panel.example"))
    assert isinstance(documented["status-multi"], list)
    assert documented["status-multi"][-1] == {"order": 99999, "error": errors.INCORRECT_ORDER}
    assert documented["cancel"][0] == {"order": 23502, "canceled": True}
    perfectpanel = ApiPage.from_settings(make_settings(v2_dialect="perfectpanel", currency="EUR"))
    documented = documented_answers(perfectpanel.html("http://panel.example"))
    assert documented["status-multi"]["99999"] == {"error": errors.INCORRECT_ORDER}
    assert documented["status"]["currency"] == "EUR"
    assert documented["cancel"][0] == {"order": 23502, "cancel": 1}
    assert documented["balance"] == {"balance": "25.50", "currency": "EUR"}


def test_example_calls_are_runnable_shell(page: ApiPage) -> None:
    blocks = pre_blocks(page.html("https://panel.example"))
    for doc in page.actions:
        call = blocks[f"call-{doc.slug}"].replace("\\\n", " ")
        assert call.startswith("curl -s https://panel.example/api/v2 ")
        assert f"-d action={doc.action}" in call
        assert "-d key=YOUR_API_KEY" in call


# --- the endpoint and the Host header --------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "scheme", "host", "server", "expected"),
    [
        (None, "http", "panel.example.com", None, "http://panel.example.com"),
        (None, "https", "Panel.Example.COM:8443", None, "https://panel.example.com:8443"),
        (None, "http", "203.0.113.9:8080", None, "http://203.0.113.9:8080"),
        (None, "http", "[::1]:8080", None, "http://[::1]:8080"),
        (None, "ftp", "panel.example.com", None, "http://panel.example.com"),
        (None, "http", None, ("10.0.0.5", 8080), "http://10.0.0.5:8080"),
        (None, "http", "<script>", ("::1", 8080), "http://[::1]:8080"),
        (None, "http", "<script>", None, "http://localhost"),
        (None, "http", "<script>", ("<script>", 80), "http://localhost"),
        ("https://smm.example.net/panel", "http", "evil.example", ("10.0.0.5", 80), "https://smm.example.net/panel"),
    ],
)
def test_endpoint_base(public_url: str | None, scheme: str, host: str | None, server: Any, expected: str) -> None:
    assert endpoint_base(public_url, scheme, host, server) == expected


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_hostile_host_header_falls_back_to_the_listening_address(page: ApiPage, host: str) -> None:
    base = endpoint_base(None, "http", host, ("127.0.0.1", 8080))
    assert base == "http://127.0.0.1:8080"
    for output in (page.html(base), page.client("example.php", base), page.client("example.py", base)):
        assert "http://127.0.0.1:8080/api/v2" in output
        for marker in MARKERS:
            assert marker not in output, marker


def test_the_page_is_rendered_once_and_only_the_endpoint_is_filled_in_per_request(page: ApiPage) -> None:
    for base in ("http://127.0.0.1:8080", "https://smm.example.net/some/panel", "http://[::1]:1"):
        assert page.html(base) == page.render(page.endpoint(base))
    assert "endpoint-of-this-gateway" not in page.html("http://x.example")


def test_the_page_never_writes_an_endpoint_it_did_not_build(page: ApiPage) -> None:
    for base in ('http://x"', "http://x/<b>", "http://x\r\n", "javascript:alert(1)//"):
        with pytest.raises(ValueError, match="endpoint"):
            page.html(base)


def test_the_panel_name_is_text_never_markup() -> None:
    name = '<script>alert("x")</script> & Co'
    markup = ApiPage.from_settings(make_settings(panel_name=name)).html("http://panel.example")
    assert "<script" not in markup
    assert "<title>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co</title>" in markup
    assert text_of(markup).count(name) >= 2  # the title bar and the heading


# --- the example clients ---------------------------------------------------------------------------


def test_the_clients_get_the_endpoint_and_keep_a_timeout(page: ApiPage) -> None:
    php = page.client("example.php", "https://smm.example.net")
    assert "public $api_url = 'https://smm.example.net/api/v2';" in php
    assert PLACEHOLDER_URL not in php
    assert "CURLOPT_TIMEOUT =>" in php
    assert "CURLOPT_CONNECTTIMEOUT =>" in php
    for method in (
        "order",
        "status",
        "multiStatus",
        "services",
        "refill",
        "multiRefill",
        "refillStatus",
        "multiRefillStatus",
        "cancel",
        "balance",
    ):
        assert re.search(rf"public function {method}\(", php), method
    python = page.client("example.py", "https://smm.example.net")
    assert 'API_URL = "https://smm.example.net/api/v2"' in python
    tree = ast.parse(python)  # it is Python, and its one network call has a timeout
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "urllib.request.urlopen"]
    assert len(calls) == 1
    assert [k.arg for k in calls[0].keywords] == ["timeout"]


def test_the_page_shows_the_clients_it_serves(page: ApiPage) -> None:
    blocks = pre_blocks(page.html("https://smm.example.net"))
    for name in CLIENTS:
        assert blocks[name.replace(".", "-")] == page.client(name, "https://smm.example.net")


# --- over HTTP -------------------------------------------------------------------------------------


async def test_the_page_and_its_files_are_served_with_strict_headers(client: httpx.AsyncClient) -> None:
    for path, media in (
        ("/api", "text/html"),
        ("/api/", "text/html"),
        ("/api/page.css", "text/css"),
        ("/api/example.php", "text/plain"),
        ("/api/example.py", "text/x-python"),
    ):
        response = await client.get(path, headers={"Host": "panel.example.com"})
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media), path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert "no-cache" in response.headers["cache-control"], path
    policy = CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "unsafe" not in policy
    page = await client.get("/api", headers={"Host": "panel.example.com"})
    assert "<script" not in page.text
    assert " style=" not in page.text
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page.text)
    assert 'id="endpoint-url">http://panel.example.com/api/v2<' in page.text
    download = await client.get("/api/example.php", headers={"Host": "panel.example.com"})
    assert download.headers["content-disposition"] == 'attachment; filename="example.php"'
    assert "'http://panel.example.com/api/v2'" in download.text


async def test_the_page_needs_no_key_and_is_not_in_the_schema(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api")).status_code == 200
    schema = (await client.get("/schema/openapi.json")).json()
    assert not [path for path in schema["paths"] if path.startswith("/api")]
    # The protocol endpoint is untouched by the page's routes next to it.
    answer = await client.post("/api/v2", data={"key": "nope", "action": "balance"})
    assert answer.json() == {"error": errors.INVALID_API_KEY}
    assert (await client.get("/api/example.rb")).status_code == 404


async def test_the_public_url_wins_over_the_host_header(database_url: str) -> None:
    app = create_app(make_settings(public_url="https://smm.example.net/panel/"), database_url=database_url)
    async with serving(app) as client:
        page = await client.get("/api", headers={"Host": "evil.example"})
        assert 'id="endpoint-url">https://smm.example.net/panel/api/v2<' in page.text
        assert "evil.example" not in page.text
        python = await client.get("/api/example.py", headers={"Host": "evil.example"})
        assert 'API_URL = "https://smm.example.net/panel/api/v2"' in python.text
        # Behind a proxy that serves the gateway under /panel, the page's own links are there too.
        assert 'href="/panel/api/page.css"' in page.text
        assert 'href="/panel/console/console.css"' in page.text
        assert 'href="/panel/api/example.php"' in page.text


async def _raw_get(app: Litestar, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """One request straight into the ASGI app, with header bytes no HTTP client library would send."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("198.51.100.7", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.mark.parametrize("path", ["/api", "/api/example.php", "/api/example.py"])
async def test_hostile_host_header_bytes_never_reach_the_answer(app: Litestar, path: str) -> None:
    """Litestar itself refuses some Host values (400, a fixed message); the page answers the rest
    with the listening address. Either way the answer holds nothing of what was sent."""
    answered = 0
    async with serving(app):
        for host in [*HOSTILE_HOSTS, "\xff\xfe", "evil.example\x00"]:
            raw = host.encode("utf-8") if host != "\xff\xfe" else b"\xff\xfe"
            status, body = await _raw_get(app, path, [(b"host", raw)])
            text = body.decode("utf-8")
            assert status in (200, 400), host
            if status == 200:
                answered += 1
                assert "http://127.0.0.1:8080/api/v2" in text, host
            else:
                assert text == '{"error":"Invalid host header","status_code":400}'
            for marker in MARKERS:
                assert marker not in text, (host, marker)
        assert answered >= 10
        # No Host at all, and two of them: still the listening address, never the second header.
        status, body = await _raw_get(app, path, [])
        assert status == 200
        assert b"http://127.0.0.1:8080/api/v2" in body
        status, body = await _raw_get(app, path, [(b"host", b"evil.example:0"), (b"host", b"other.example")])
        assert status == 200
        assert b"evil" not in body
        assert b"other.example" not in body
