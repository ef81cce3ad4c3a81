"""The customers' API page as HTML, and the example clients with this gateway's endpoint in them.

:class:`ApiPage` is built once per process from the settings (everything that does not depend on
the request); :meth:`ApiPage.html` and :meth:`ApiPage.client` then only put in the endpoint URL. The
endpoint comes from :func:`endpoint_base`, which trusts ``GATEWAY_PUBLIC_URL`` and otherwise only a
``Host`` header that is a plausible authority: the page never repeats raw text from a request.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from gateway import errors
from gateway.apidoc import content
from gateway.apidoc.content import ActionDoc, ErrorDoc, Idempotency, ServiceTypeDoc
from gateway.apidoc.html import Html, el, join
from gateway.lifecycle import OrderStatus, RefillStatus
from gateway.settings import Settings, plausible_authority
from gateway.v2.actions import MAX_IDS

__all__ = ["CLIENTS", "ApiPage", "endpoint_base"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
V2_PATH = "/api/v2"
# What the example clients say until the page fills in this gateway's endpoint.
PLACEHOLDER_URL = "https://your-panel.example/api/v2"
_TEMPLATE_ENDPOINT = "http://endpoint-of-this-gateway.invalid/api/v2"
# An endpoint as endpoint_base() builds it: nothing that could end a string in HTML, PHP or Python.
_SAFE_ENDPOINT = re.compile(r"https?://[a-z0-9.:\[\]-]+(/[A-Za-z0-9._~-]+)*/api/v2")


@dataclass(frozen=True, slots=True)
class Client:
    """A downloadable example client: its file in static/ and how it is served."""

    filename: str
    language: str
    media_type: str


CLIENTS: Mapping[str, Client] = {
    "example.php": Client("example.php", "PHP", "text/plain; charset=utf-8"),
    "example.py": Client("example.py", "Python", "text/x-python; charset=utf-8"),
}


def _socket_authority(server: object) -> str | None:
    """The listening address the connection arrived at (from the server, not the client)."""
    if not (isinstance(server, tuple | list) and len(server) == 2):
        return None
    host, port = server
    if not isinstance(host, str) or not isinstance(port, int):
        return None
    return plausible_authority(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def endpoint_base(public_url: str | None, scheme: object, host_header: str | None, server: object) -> str:
    """The gateway's base URL as this client reaches it: ``GATEWAY_PUBLIC_URL`` when set; else the
    request's scheme and ``Host`` when the host is a plausible authority; else the address of the
    socket the request came in on; else ``localhost``. Never raw text of the request."""
    if public_url:
        return public_url
    shown_scheme = scheme if scheme in ("http", "https") else "http"
    authority = (plausible_authority(host_header) if host_header else None) or _socket_authority(server)
    return f"{shown_scheme}://{authority or 'localhost'}"


def _json(value: object, indent: int = 0, width: int = 88) -> str:
    """JSON as a person reads it: on one line when it fits, else one item (or key) per line."""
    inline = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(inline) + indent <= width or not isinstance(value, list | dict) or not value:
        return inline
    pad = " " * (indent + 2)
    if isinstance(value, list):
        items = [pad + _json(item, indent + 2, width) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    entries = [
        f"{pad}{json.dumps(str(k), ensure_ascii=False)}: {_json(v, indent + 2, width)}" for k, v in value.items()
    ]
    return "{\n" + ",\n".join(entries) + "\n" + " " * indent + "}"


def _wrapped(first: str, words: list[str], width: int = 86) -> str:
    """A shell command: ``first`` on a line of its own (its length varies with the endpoint), then
    ``words`` on indented lines of at most ``width`` characters where they fit, continued with ``\\``."""
    lines = [first]
    current = ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return " \\\n  ".join(lines)


def _curl(endpoint: str, action: ActionDoc) -> str:
    pairs = [("key", "YOUR_API_KEY"), ("action", action.action), *action.example]
    return _wrapped(f"curl -s {endpoint}", [f"-d {shlex.quote(f'{name}={value}')}" for name, value in pairs])


def _idempotent_curl(endpoint: str, ext: Idempotency) -> str:
    key = "3f2c8a9e-5b1d-4c7a-9e0f-1a2b3c4d5e6f"
    words = [f"-H {shlex.quote(f'{ext.header}: {key}')}", "-d key=YOUR_API_KEY", "-d action=add", "-d service=1"]
    return _wrapped(f"curl -s {endpoint}", [*words, "-d link=https://instagram.com/p/Cxyz", "-d quantity=1000"])


def _code_list(names: tuple[str, ...]) -> Html | str:
    return join(join([el("code", name), ", " if i < len(names) - 1 else ""]) for i, name in enumerate(names)) or "–"


def _table(class_: str, caption: str, headings: tuple[str, ...], rows: list[list[object]]) -> Html:
    return el(
        "div",
        el(
            "table",
            el("caption", caption, class_="visually-hidden"),
            el("thead", el("tr", [el("th", h, scope="col") for h in headings])),
            el("tbody", [el("tr", [el("td", cell) for cell in row]) for row in rows]),
            class_=class_,
        ),
        class_="table-wrap",
    )


@dataclass(frozen=True, slots=True)
class ApiPage:
    """Everything the page says that does not depend on the request, built once per process."""

    panel_name: str
    public_url: str | None
    dialect: str
    currency: str
    rate_limit_per_minute: int
    max_body_bytes: int
    actions: tuple[ActionDoc, ...]
    service_types: tuple[ServiceTypeDoc, ...]
    errors: tuple[ErrorDoc, ...]
    idempotency: Idempotency
    sources: Mapping[str, str]  # example client file name -> its text, with the placeholder URL
    stylesheet: bytes = b""
    # The path of GATEWAY_PUBLIC_URL ("" when unset): a proxy that serves the gateway under a path
    # serves the page's stylesheets and downloads under it too.
    path_prefix: str = ""
    # The page rendered once with _TEMPLATE_ENDPOINT where the endpoint goes: a request only pays
    # for a str.replace (the page is public and unauthenticated; rendering it costs milliseconds).
    template: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiPage:
        extension = content.idempotency(settings)
        sources = {name: (STATIC_DIR / client.filename).read_text("utf-8") for name, client in CLIENTS.items()}
        for name, source in sources.items():
            if source.count(PLACEHOLDER_URL) != 1:
                raise LookupError(f"{name} must hold the placeholder URL exactly once")
        page = cls(
            panel_name=settings.panel_name,
            public_url=settings.public_url,
            dialect=settings.v2_dialect,
            currency=settings.currency,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            max_body_bytes=settings.max_body_bytes,
            actions=tuple(content.actions(settings.v2_dialect, settings.currency, extension)),
            service_types=tuple(content.service_type_docs()),
            errors=tuple(content.error_docs(settings.rate_limit_per_minute)),
            idempotency=extension,
            sources=sources,
            stylesheet=(STATIC_DIR / "page.css").read_bytes(),
            path_prefix=urlsplit(settings.public_url).path if settings.public_url else "",
        )
        return replace(page, template=page.render(_TEMPLATE_ENDPOINT))

    def endpoint(self, base: str) -> str:
        """The v2 endpoint under ``base`` (from :func:`endpoint_base`), checked to be plain text."""
        endpoint = base + V2_PATH
        if _SAFE_ENDPOINT.fullmatch(endpoint) is None:
            raise ValueError("an endpoint URL with characters the page does not write out")
        return endpoint

    def client(self, name: str, base: str) -> str:
        """An example client's source with this gateway's endpoint filled in."""
        return self.sources[name].replace(PLACEHOLDER_URL, self.endpoint(base))

    def html(self, base: str) -> str:
        """The page with the endpoint under ``base`` (from :func:`endpoint_base`)."""
        return self.template.replace(_TEMPLATE_ENDPOINT, self.endpoint(base))

    # --- the page ---------------------------------------------------------------------------------

    def render(self, endpoint: str) -> str:
        """The whole page for ``endpoint`` (already checked: it is written out as it is)."""
        sections = [
            ("endpoint", "Endpoint"),
            ("actions", "Actions"),
            ("service-types", "Service types"),
            ("errors", "Errors"),
            ("idempotency", "Idempotency"),
            ("clients", "Example clients"),
        ]
        head = el(
            "head",
            el("meta", charset="utf-8"),
            el("meta", name="viewport", content="width=device-width, initial-scale=1"),
            el("meta", name="referrer", content="no-referrer"),
            el("title", self.panel_name),
            el("link", rel="icon", href=f"{self.path_prefix}/console/favicon.svg", type="image/svg+xml"),
            el("link", rel="stylesheet", href=f"{self.path_prefix}/console/console.css"),
            el("link", rel="stylesheet", href=f"{self.path_prefix}/api/page.css"),
        )
        top = el(
            "header",
            el("p", el("a", self.panel_name, href="#main"), class_="brand"),
            el(
                "nav",
                el("ul", [el("li", el("a", title, href=f"#{anchor}")) for anchor, title in sections]),
                aria_label="Sections",
                class_="sections",
            ),
            class_="top",
        )
        main = el(
            "main",
            el("h1", self.panel_name),
            el(
                "p",
                "How to use this panel's API from your own scripts and software: one URL, your API key, "
                "and the actions below. It is the API v2 that SMM panels share, so clients written for "
                "another panel work here unchanged.",
                class_="lead",
            ),
            self._endpoint_section(endpoint),
            self._actions_section(endpoint),
            self._service_types_section(),
            self._errors_section(),
            self._idempotency_section(endpoint),
            self._clients_section(endpoint),
            id="main",
            class_="doc",
            tabindex="-1",
        )
        body = el("body", el("a", "Skip to content", href="#main", class_="skip-link"), top, main)
        return "<!doctype html>\n" + el("html", head, body, lang="en") + "\n"

    def _endpoint_section(self, endpoint: str) -> Html:
        limits = [
            el("li", f"At most {MAX_IDS} ids in one call; a request body of at most {self.max_body_bytes:,} bytes."),
        ]
        if self.rate_limit_per_minute:
            limits.append(
                el(
                    "li",
                    f"About {self.rate_limit_per_minute} calls per minute with one key; beyond that the answer "
                    "is an error with a ",
                    el("code", "Retry-After"),
                    " header (seconds to wait).",
                )
            )
        return el(
            "section",
            el("h2", "Endpoint", id="endpoint"),
            el("p", el("code", endpoint, class_="endpoint-url", id="endpoint-url")),
            el(
                "ul",
                el(
                    "li",
                    el("strong", "POST"),
                    " to this URL (a trailing slash is accepted too) with the parameters as ",
                    el("code", "application/x-www-form-urlencoded"),
                    " (what PHP's curl and Python's requests send), ",
                    el("code", "multipart/form-data"),
                    " or a JSON object (",
                    el("code", "Content-Type: application/json"),
                    "). ",
                    el("strong", "GET"),
                    " with the parameters in the query string works too; when both are sent, the body wins.",
                ),
                el(
                    "li",
                    "Every call carries ",
                    el("code", "key"),
                    " (your API key) and ",
                    el("code", "action"),
                    ". Parameters an action does not know are ignored. Lists of ids are comma-separated (",
                    el("code", "orders=1,2,3"),
                    "); ",
                    el("code", "orders[]=1&orders[]=2"),
                    " and JSON arrays are read the same way.",
                ),
                el(
                    "li",
                    "Every answer is ",
                    el("strong", "HTTP 200"),
                    " with a JSON body, errors included: ",
                    el("code", '{"error": "…"}'),
                    " with one of the messages under ",
                    el("a", "Errors", href="#errors"),
                    ". Any other HTTP status means the call did not get through: check before you repeat an ",
                    el("code", "add"),
                    ".",
                ),
                el(
                    "li",
                    "Ids (",
                    el("code", "order"),
                    ", ",
                    el("code", "refill"),
                    ", ",
                    el("code", "service"),
                    ") are JSON numbers; money (",
                    el("code", "rate"),
                    ", ",
                    el("code", "charge"),
                    ", ",
                    el("code", "balance"),
                    f") is a decimal string in {self.currency}, like ",
                    el("code", '"0.90"'),
                    ". An id that is not yours is answered exactly like one that does not exist.",
                ),
                *limits,
            ),
            el(
                "p",
                "The example answers below are in the ",
                el("code", self.dialect),
                " shape, this panel's default. If your software expects the other common shape of the "
                "multi-order answers (",
                el("code", "documented" if self.dialect == "perfectpanel" else "perfectpanel"),
                "), ask us to switch your account.",
                class_="hint",
            ),
        )

    def _actions_section(self, endpoint: str) -> Html:
        toc = el(
            "ul",
            [el("li", el("a", a.title, href=f"#{a.slug}"), " ", el("code", a.action)) for a in self.actions],
            class_="toc",
        )
        parts: list[Html] = [el("h2", "Actions", id="actions"), toc]
        for action in self.actions:
            parts.append(
                el(
                    "section",
                    el("h3", action.title, el("code", f"action={action.action}"), id=action.slug),
                    el("p", action.summary),
                    _table(
                        "params",
                        f"Parameters of {action.title}",
                        ("parameter", "required", "meaning"),
                        [[el("code", p.name), p.required, p.meaning] for p in action.params],
                    ),
                    [el("p", note, class_="hint") for note in action.notes],
                    el("p", "Example call", class_="label"),
                    el("pre", el("code", _curl(endpoint, action)), id=f"call-{action.slug}"),
                    el("p", "Example answer", class_="label"),
                    el("pre", el("code", _json(action.answer)), id=f"answer-{action.slug}"),
                    class_="action",
                    data_action=action.action,
                )
            )
        parts.append(
            el(
                "p",
                "Order statuses: ",
                _code_list(tuple(OrderStatus)),
                ". Refill statuses: ",
                _code_list(tuple(RefillStatus)),
                ".",
            )
        )
        return el("section", parts)

    def _service_types_section(self) -> Html:
        return el(
            "section",
            el("h2", "Service types", id="service-types"),
            el(
                "p",
                "Each service's ",
                el("code", "type"),
                " (in the ",
                el("code", "services"),
                " answer) says which parameters ",
                el("code", "add"),
                " needs besides ",
                el("code", "key"),
                ", ",
                el("code", "action"),
                " and ",
                el("code", "service"),
                ". A missing or malformed one is answered ",
                el("code", errors.incorrect("<field>")),
                ", naming it.",
            ),
            _table(
                "types",
                "Service types and the parameters add needs",
                ("type", "required", "optional", "how it counts and charges"),
                [
                    [el("strong", t.name), _code_list(t.required), _code_list(t.optional), t.notes]
                    for t in self.service_types
                ],
            ),
            el("h3", "What the parameters mean"),
            _table(
                "fields",
                "The type-specific parameters",
                ("parameter", "meaning"),
                [[el("code", name), meaning] for name, meaning in content.FIELD_MEANINGS.items()],
            ),
            id="types-section",
        )

    def _errors_section(self) -> Html:
        return el(
            "section",
            el("h2", "Errors", id="errors"),
            el(
                "p",
                "The exact messages, as the ",
                el("code", "error"),
                " field carries them; compare them as they are. Messages with a number or a field name in "
                "them are shown with an example value.",
            ),
            _table(
                "errors",
                "Error messages",
                ("message", "when"),
                [[el("code", e.message), e.when] for e in self.errors],
            ),
        )

    def _idempotency_section(self, endpoint: str) -> Html:
        ext = self.idempotency
        window = content.duration(ext.window_seconds)
        return el(
            "section",
            el("h2", "Idempotency (optional)", id="idempotency"),
            el(
                "p",
                "A network failure after you sent an ",
                el("code", "add"),
                " leaves you not knowing whether the order was placed. Give the call a key of your own and "
                "repeat it as often as you need: ",
                _code_list(ext.actions),
                " accept an ",
                el("code", ext.header),
                " HTTP header or an ",
                el("code", ext.param),
                f" parameter of 1 to {ext.max_length} printable ASCII characters (a UUID is a good choice).",
            ),
            el(
                "ul",
                el(
                    "li",
                    f"The same key from the same account within {window} is answered with what the first call "
                    "was answered, and nothing is done a second time: no second charge, no second order, refill "
                    "or cancel.",
                ),
                el("li", "The same key with different parameters is answered ", el("code", ext.reused_error), "."),
                el(
                    "li",
                    f"A key that is not 1 to {ext.max_length} printable ASCII characters is answered ",
                    el("code", ext.malformed_error),
                    ".",
                ),
                el("li", "Calls without a key work as they always did."),
            ),
            el("p", "Example call", class_="label"),
            el("pre", el("code", _idempotent_curl(endpoint, ext)), id="call-idempotent"),
            id="idempotency-section",
        )

    def _clients_section(self, endpoint: str) -> Html:
        blocks: list[Html] = [
            el("h2", "Example clients", id="clients"),
            el(
                "p",
                "Written for this panel, with its URL filled in, a timeout on every call, and nothing to "
                "install besides PHP's curl extension. The PHP class has the methods of the ",
                el("code", "Api"),
                " class panels publish (",
                _code_list(
                    (
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
                    )
                ),
                "), so scripts written for it keep working.",
            ),
        ]
        for name, client in CLIENTS.items():
            slug = name.replace(".", "-")
            blocks += [
                el("h3", client.language, id=f"client-{client.language.lower()}"),
                el("a", f"Download {name}", href=f"{self.path_prefix}/api/{name}", download=name, class_="download"),
                el("pre", el("code", self.sources[name].replace(PLACEHOLDER_URL, endpoint)), class_="client", id=slug),
            ]
        return el("section", blocks)
