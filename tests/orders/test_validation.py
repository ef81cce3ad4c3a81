"""Validation of ``add`` parameters: every service type, every refusal's exact message, hostile input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ProtocolError
from gateway.models import SERVICE_TYPES
from gateway.orders.validation import OrderRequest, validate_add

LINK = "https://instagram.com/p/abc"
MIN, MAX = 10, 10_000


def add(service_type: str, params: dict[str, str], *, dripfeed: bool = False, **limits: int) -> OrderRequest:
    return validate_add(
        service_type,
        params,
        min_quantity=limits.get("min_quantity", MIN),
        max_quantity=limits.get("max_quantity", MAX),
        dripfeed=dripfeed,
    )


def refused(service_type: str, params: dict[str, str], *, dripfeed: bool = False, **limits: int) -> str:
    with pytest.raises(ProtocolError) as caught:
        add(service_type, params, dripfeed=dripfeed, **limits)
    return caught.value.message


# A valid parameter set per type (with the noise a client adds: key, action, service, extras).
NOISE = {"key": "secret", "action": "add", "service": "7", "extra": "dropped"}
VALID: dict[str, dict[str, str]] = {
    "Default": {"link": LINK, "quantity": "100"},
    "Package": {"link": LINK},
    "Custom Comments": {"link": LINK, "comments": "nice\ngreat"},
    "Custom Comments Package": {"link": LINK, "comments": "nice\ngreat"},
    "Mentions": {"link": LINK, "quantity": "100", "usernames": "alice\nbob"},
    "Mentions with Hashtags": {"link": LINK, "quantity": "100", "usernames": "alice", "hashtags": "#one\n#two"},
    "Mentions Custom List": {"link": LINK, "usernames": "alice\nbob"},
    "Mentions Hashtag": {"link": LINK, "quantity": "100", "hashtag": "#sun"},
    "Mentions User Followers": {"link": LINK, "quantity": "100", "username": "@alice"},
    "Mentions Media Likers": {"link": LINK, "quantity": "100", "media": "https://instagram.com/p/xyz"},
    "Comment Likes": {"link": LINK, "quantity": "100", "username": "alice"},
    "Comment Replies": {"link": LINK, "username": "alice", "comments": "a\nb\nc"},
    "Poll": {"link": LINK, "quantity": "100", "answer_number": "2"},
    "Invites from Groups": {"link": LINK, "quantity": "100", "groups": "group1\ngroup2"},
    "Subscriptions": {"username": "alice", "min": "10", "max": "100", "delay": "30", "posts": "5"},
}


def test_every_service_type_has_a_valid_example() -> None:
    assert set(VALID) == set(SERVICE_TYPES)


# --- happy paths -------------------------------------------------------------------------------

HAPPY: list[tuple[str, dict[str, str], OrderRequest]] = [
    ("Default", VALID["Default"], OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100"})),
    ("Package", {"link": LINK, "quantity": "abc"}, OrderRequest(LINK, 1, 1, True, {"link": LINK})),
    (
        "Custom Comments",
        {"link": LINK, "comments": "nice\r\n\r\n  great  \n\n", "quantity": "999"},
        OrderRequest(LINK, 2, 2, False, {"link": LINK, "comments": "nice\ngreat"}),
    ),
    (
        "Custom Comments Package",
        VALID["Custom Comments Package"],
        OrderRequest(LINK, 2, 1, True, {"link": LINK, "comments": "nice\ngreat"}),
    ),
    (
        "Mentions",
        VALID["Mentions"],
        OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100", "usernames": "alice\nbob"}),
    ),
    (
        "Mentions with Hashtags",
        VALID["Mentions with Hashtags"],
        OrderRequest(
            LINK,
            100,
            100,
            False,
            {"link": LINK, "quantity": "100", "usernames": "alice", "hashtags": "#one\n#two"},
        ),
    ),
    (
        "Mentions Custom List",
        {"link": LINK, "usernames": "alice\r\n\nbob, carol\n"},
        OrderRequest(LINK, 3, 3, False, {"link": LINK, "usernames": "alice\nbob\ncarol"}),
    ),
    (
        "Mentions Hashtag",
        VALID["Mentions Hashtag"],
        OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100", "hashtag": "#sun"}),
    ),
    (
        "Mentions User Followers",
        VALID["Mentions User Followers"],
        OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100", "username": "@alice"}),
    ),
    (
        "Mentions Media Likers",
        VALID["Mentions Media Likers"],
        OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100", "media": "https://instagram.com/p/xyz"}),
    ),
    (
        "Comment Likes",
        VALID["Comment Likes"],
        OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100", "username": "alice"}),
    ),
    (
        "Comment Replies",
        VALID["Comment Replies"],
        OrderRequest(LINK, 3, 3, False, {"link": LINK, "username": "alice", "comments": "a\nb\nc"}),
    ),
    (
        "Poll",
        {"link": LINK, "quantity": " 0100 ", "answer_number": "02"},
        OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100", "answer_number": "2"}),
    ),
    (
        "Invites from Groups",
        VALID["Invites from Groups"],
        OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100", "groups": "group1\ngroup2"}),
    ),
    (
        "Subscriptions",
        {**VALID["Subscriptions"], "link": LINK, "expiry": "1/3/2027"},
        OrderRequest(
            None,
            500,
            500,
            False,
            {"username": "alice", "min": "10", "max": "100", "delay": "30", "posts": "5", "expiry": "01/03/2027"},
        ),
    ),
    ("Some Future Type", VALID["Default"], OrderRequest(LINK, 100, 100, False, {"link": LINK, "quantity": "100"})),
]


@pytest.mark.parametrize(("service_type", "params", "expected"), HAPPY, ids=[case[0] for case in HAPPY])
def test_happy_path(service_type: str, params: dict[str, str], expected: OrderRequest) -> None:
    assert add(service_type, {**NOISE, **params}, min_quantity=1) == expected


# --- links -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    [
        "https://www.instagram.com/p/Cx1_-z/?utm=1#x",
        "http://t.me/channel",
        "HTTPS://Example.COM",
        "https://пример.рф/путь",
        "instagram.com/username",
        "@name",
        "name",
        "first.last_99",
        "  https://t.me/c  ",
    ],
)
def test_plausible_links_are_accepted(link: str) -> None:
    assert add("Default", {"link": link, "quantity": "10"}).link == link.strip()


@pytest.mark.parametrize(
    "params",
    [
        {"quantity": "10"},
        {"link": "", "quantity": "10"},
        {"link": "   ", "quantity": "10"},
        {"link": "https://t.me/" + "a" * 2000, "quantity": "10"},
        {"link": "https://t.me/a b", "quantity": "10"},
        {"link": "https://t.me/a\x00", "quantity": "10"},
        {"link": "https://t.me/a\tb", "quantity": "10"},
        {"link": "https://t.me/\u202eab", "quantity": "10"},
        {"link": "https://t.me/a\u200bb", "quantity": "10"},
        {"link": "javascript:alert(1)", "quantity": "10"},
        {"link": "javascript:alert('/')", "quantity": "10"},
        {"link": "ftp://example.com/file", "quantity": "10"},
        {"link": "https://", "quantity": "10"},
        {"link": "https:///path", "quantity": "10"},
        {"link": "https://localhost/x", "quantity": "10"},
        {"link": "https://example.com:99999/", "quantity": "10"},
        {"link": "http://[::1/", "quantity": "10"},
        {"link": "@", "quantity": "10"},
        {"link": "...", "quantity": "10"},
        {"link": "<script>", "quantity": "10"},
    ],
)
def test_bad_links_are_refused(params: dict[str, str]) -> None:
    assert refused("Default", params) == "Incorrect link"


@pytest.mark.parametrize("service_type", [t for t in SERVICE_TYPES if t != "Subscriptions"])
def test_every_type_but_subscriptions_needs_a_link(service_type: str) -> None:
    params = {k: v for k, v in VALID[service_type].items() if k != "link"}
    assert refused(service_type, params) == "Incorrect link"


def test_link_length_cap_is_configurable() -> None:
    params = {"link": "https://t.me/abcdef", "quantity": "10"}
    with pytest.raises(ProtocolError, match=r"^Incorrect link$"):
        validate_add("Default", params, min_quantity=1, max_quantity=100, dripfeed=False, max_link_length=10)


# --- quantity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("10", 10),
        ("10000", 10000),
        (" 12 ", 12),
        ("0012", 12),
        ("9", "Quantity less than minimal 10"),
        ("0", "Quantity less than minimal 10"),
        ("10001", "Quantity more than maximal 10000"),
        ("1000000000", "Quantity more than maximal 10000"),
        (None, "Incorrect request"),
        ("", "Incorrect request"),
        ("abc", "Incorrect request"),
        ("1.5", "Incorrect request"),
        ("1e3", "Incorrect request"),
        ("-5", "Incorrect request"),
        ("+12", "Incorrect request"),
        ("1 000", "Incorrect request"),
        ("١٢", "Incorrect request"),  # Arabic-Indic digits
        ("²", "Incorrect request"),
        ("1000000001", "Incorrect request"),
        ("9" * 5000, "Incorrect request"),  # past Python's int-from-str limit
        ("0" * 5000 + "12", 12),
    ],
)
@pytest.mark.parametrize("service_type", ["Default", "Mentions", "Poll", "Comment Likes"])
def test_quantity(service_type: str, quantity: str | None, expected: int | str) -> None:
    params = dict(VALID[service_type])
    params.pop("quantity")
    if quantity is not None:
        params["quantity"] = quantity
    if isinstance(expected, int):
        order = add(service_type, params)
        assert order.quantity == order.units == expected
        assert order.params["quantity"] == str(expected)
    else:
        assert refused(service_type, params) == expected


def test_a_zero_minimum_still_refuses_zero() -> None:
    assert refused("Default", {"link": LINK, "quantity": "0"}, min_quantity=0) == "Quantity less than minimal 1"
    assert add("Default", {"link": LINK, "quantity": "1"}, min_quantity=0).quantity == 1


# --- drip-feed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runs", "interval", "quantity", "forwarded"),
    [
        ("5", "30", 500, {"runs": "5", "interval": "30"}),
        (" 05 ", "030", 500, {"runs": "5", "interval": "30"}),
        ("1", "1", 100, {"runs": "1", "interval": "1"}),
        ("1000", "10000", 100_000, {"runs": "1000", "interval": "10000"}),
        ("", "", 100, {}),  # form clients send empty drip-feed fields
    ],
)
def test_dripfeed_multiplies_the_quantity(runs: str, interval: str, quantity: int, forwarded: dict[str, str]) -> None:
    order = add("Default", {"link": LINK, "quantity": "100", "runs": runs, "interval": interval}, dripfeed=True)
    assert order == OrderRequest(LINK, quantity, quantity, False, {"link": LINK, "quantity": "100", **forwarded})


def test_dripfeed_limits_apply_per_run() -> None:
    # 5 runs of 10 000 passes a max of 10 000; 5 runs of 9 does not pass a min of 10.
    order = add("Default", {"link": LINK, "quantity": "10000", "runs": "5", "interval": "10"}, dripfeed=True)
    assert order.units == 50_000
    params = {"link": LINK, "quantity": "9", "runs": "5", "interval": "10"}
    assert refused("Default", params, dripfeed=True) == "Quantity less than minimal 10"


@pytest.mark.parametrize(
    ("runs", "interval", "message"),
    [
        ("0", "10", "Incorrect runs"),
        ("1001", "10", "Incorrect runs"),
        ("x", "10", "Incorrect runs"),
        ("-2", "10", "Incorrect runs"),
        (None, "10", "Incorrect runs"),
        ("5", None, "Incorrect interval"),
        ("5", "", "Incorrect interval"),
        ("5", "0", "Incorrect interval"),
        ("5", "10001", "Incorrect interval"),
        ("5", "1.5", "Incorrect interval"),
    ],
)
def test_bad_dripfeed_is_refused(runs: str | None, interval: str | None, message: str) -> None:
    params = {"link": LINK, "quantity": "100"}
    if runs is not None:
        params["runs"] = runs
    if interval is not None:
        params["interval"] = interval
    assert refused("Default", params, dripfeed=True) == message


@pytest.mark.parametrize("extra", [{"runs": "5", "interval": "10"}, {"runs": "5"}, {"interval": "10"}])
def test_dripfeed_on_a_service_without_it_is_refused(extra: dict[str, str]) -> None:
    assert refused("Default", {"link": LINK, "quantity": "100", **extra}) == "Incorrect request"


def test_other_types_drop_dripfeed_fields() -> None:
    order = add("Mentions", {**VALID["Mentions"], "runs": "5", "interval": "10"}, dripfeed=True)
    assert order.units == 100
    assert "runs" not in order.params


# --- comments and lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("comments", "count", "forwarded"),
    [
        ("one", 1, "one"),
        ("one\ntwo\nthree", 3, "one\ntwo\nthree"),
        ("one\r\ntwo\r\n", 2, "one\ntwo"),
        ("\n\n one \n\n\t\ntwo\n\n", 2, "one\ntwo"),
        ("one\rtwo", 2, "one\ntwo"),
        ("héllo 👋🏽\nСупер, класс!\n👨\u200d👩\u200d👧", 3, "héllo 👋🏽\nСупер, класс!\n👨\u200d👩\u200d👧"),
    ],
)
@pytest.mark.parametrize("service_type", ["Custom Comments", "Comment Replies"])
def test_comments_are_counted_by_non_blank_lines(service_type: str, comments: str, count: int, forwarded: str) -> None:
    order = add(service_type, {**VALID[service_type], "comments": comments}, min_quantity=1)
    assert (order.quantity, order.units, order.params["comments"]) == (count, count, forwarded)


def test_comment_count_obeys_limits() -> None:
    params = {"link": LINK, "comments": "\n".join(["c"] * 9)}
    assert refused("Custom Comments", params) == "Quantity less than minimal 10"
    params["comments"] = "\n".join(["c"] * 10)
    assert add("Custom Comments", params).quantity == 10
    params["comments"] = "\n".join(["c"] * 11)
    assert refused("Custom Comments", params, max_quantity=10) == "Quantity more than maximal 10"


def test_comments_package_ignores_limits_and_charges_once() -> None:
    params = {"link": LINK, "comments": "\n".join(["c"] * 50)}
    assert add("Custom Comments Package", params, max_quantity=1) == OrderRequest(
        LINK, 50, 1, True, {"link": LINK, "comments": params["comments"]}
    )


@pytest.mark.parametrize(
    "comments",
    [None, "", "  ", "\n\r\n \n", "fine\x00", "bell\x07", "x" * 100_001, "c\n" * 5_000_000],
    ids=["missing", "empty", "spaces", "blank-lines", "nul", "bell", "over-cap", "10MB"],
)
@pytest.mark.parametrize("service_type", ["Custom Comments", "Custom Comments Package", "Comment Replies"])
def test_bad_comments_are_refused(service_type: str, comments: str | None) -> None:
    params = {k: v for k, v in VALID[service_type].items() if k != "comments"}
    if comments is not None:
        params["comments"] = comments
    assert refused(service_type, params, min_quantity=1) == "Incorrect comments"


def test_mentions_custom_list_counts_usernames() -> None:
    params = {"link": LINK, "usernames": ",".join(f"user{i}" for i in range(9))}
    assert refused("Mentions Custom List", params) == "Quantity less than minimal 10"
    params["usernames"] += ",user9"
    assert add("Mentions Custom List", params).quantity == 10


# --- type-specific fields ----------------------------------------------------------------------

FIELD_CASES: list[tuple[str, str, list[str | None]]] = [
    ("Mentions", "usernames", [None, "", " \n , ", "a\x00b", "x" * 100_001]),
    ("Mentions with Hashtags", "usernames", [None, "", "\n"]),
    ("Mentions with Hashtags", "hashtags", [None, "", ",,", "#a\x1b"]),
    ("Mentions Custom List", "usernames", [None, "", " , \n"]),
    ("Mentions Hashtag", "hashtag", [None, "", "#", "two words", "#a#b", "#tag\x00", "#" + "a" * 2001]),
    ("Mentions User Followers", "username", [None, "", "@", "a b", "a\x00", "https://", "javascript:x()"]),
    ("Mentions Media Likers", "media", [None, "", "ftp://x.com/m", "a b", "\u202emedia"]),
    ("Comment Likes", "username", [None, "", "<b>", "a\u200bb"]),
    ("Comment Replies", "username", [None, "", "a b"]),
    ("Poll", "answer_number", [None, "", "0", "-1", "1.5", "x", "99999999999"]),
    ("Invites from Groups", "groups", [None, "", "\n\n", "g\x00"]),
]


@pytest.mark.parametrize(
    ("service_type", "field", "value"),
    [(t, f, v) for t, f, values in FIELD_CASES for v in values],
)
def test_bad_type_fields_are_refused(service_type: str, field: str, value: str | None) -> None:
    params = {k: v for k, v in VALID[service_type].items() if k != field}
    if value is not None:
        params[field] = value
    assert refused(service_type, params) == f"Incorrect {field}"


def test_values_are_forwarded_trimmed_as_sent() -> None:
    order = add("Mentions", {"link": " " + LINK, "quantity": "100", "usernames": "  alice, bob\n\ncarol  "})
    assert order.params == {"link": LINK, "quantity": "100", "usernames": "alice, bob\n\ncarol"}


# --- subscriptions -----------------------------------------------------------------------------


def sub(**changes: str | None) -> dict[str, str]:
    params = dict(VALID["Subscriptions"])
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return params


@pytest.mark.parametrize(
    ("changes", "units", "forwarded"),
    [
        ({}, 500, {"posts": "5"}),
        ({"posts": None}, 100, {}),
        ({"posts": None, "old_posts": "3"}, 300, {"old_posts": "3"}),
        ({"posts": "2", "old_posts": "3"}, 500, {"posts": "2", "old_posts": "3"}),
        ({"posts": "", "old_posts": " "}, 100, {}),
        ({"min": "100"}, 500, {"posts": "5"}),  # min == max
        ({"min": "10", "max": "10000"}, 50_000, {"posts": "5", "max": "10000"}),  # both limits exactly
        ({"delay": "0"}, 500, {"posts": "5", "delay": "0"}),
        ({"delay": "1440"}, 500, {"posts": "5", "delay": "1440"}),
        ({"expiry": "29/02/2028"}, 500, {"posts": "5", "expiry": "29/02/2028"}),
        ({"expiry": " 31/12/2027 "}, 500, {"posts": "5", "expiry": "31/12/2027"}),
        ({"expiry": ""}, 500, {"posts": "5"}),
        ({"username": "https://instagram.com/alice"}, 500, {"posts": "5", "username": "https://instagram.com/alice"}),
    ],
)
def test_subscription(changes: dict[str, str | None], units: int, forwarded: dict[str, str]) -> None:
    params = sub(**changes)
    base = {"username": "alice", "min": params["min"], "max": "100", "delay": "30"}
    assert add("Subscriptions", params) == OrderRequest(None, units, units, False, {**base, **forwarded})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"username": None}, "Incorrect username"),
        ({"username": ""}, "Incorrect username"),
        ({"username": "a b"}, "Incorrect username"),
        ({"min": None}, "Incorrect min"),
        ({"min": "x"}, "Incorrect min"),
        ({"min": "-1"}, "Incorrect min"),
        ({"max": None}, "Incorrect max"),
        ({"max": "1.5"}, "Incorrect max"),
        ({"max": "9" * 20}, "Incorrect max"),
        ({"min": "9"}, "Quantity less than minimal 10"),
        ({"max": "10001"}, "Quantity more than maximal 10000"),
        ({"min": "50", "max": "40"}, "Incorrect max"),
        ({"delay": None}, "Incorrect delay"),
        ({"delay": "-5"}, "Incorrect delay"),
        ({"delay": "1441"}, "Incorrect delay"),
        ({"delay": "soon"}, "Incorrect delay"),
        ({"posts": "0"}, "Incorrect posts"),
        ({"posts": "many"}, "Incorrect posts"),
        ({"old_posts": "0"}, "Incorrect old_posts"),
        ({"expiry": "31/02/2027"}, "Incorrect expiry"),
        ({"expiry": "29/02/2027"}, "Incorrect expiry"),
        ({"expiry": "2027-03-01"}, "Incorrect expiry"),
        ({"expiry": "01/13/2027"}, "Incorrect expiry"),
        ({"expiry": "00/01/2027"}, "Incorrect expiry"),
        ({"expiry": "01/01/0000"}, "Incorrect expiry"),
        ({"expiry": "01/01/27"}, "Incorrect expiry"),
        ({"expiry": "٠١/٠١/٢٠٢٧"}, "Incorrect expiry"),
        ({"expiry": "01/01/2027\x00"}, "Incorrect expiry"),
    ],
)
def test_bad_subscription_is_refused(changes: dict[str, str | None], message: str) -> None:
    assert refused("Subscriptions", sub(**changes)) == message


def test_subscription_with_zero_limits() -> None:
    assert refused("Subscriptions", sub(min="0", max="0"), min_quantity=0) == "Quantity less than minimal 1"
    assert add("Subscriptions", sub(min="0", max="1"), min_quantity=0).units == 5


# --- anything at all ---------------------------------------------------------------------------

FIELD_NAMES = sorted({name for params in VALID.values() for name in params} | {"runs", "interval", "old_posts"})
values = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\s*[+-]?[0-9]{0,12}\s*", fullmatch=True),
    st.sampled_from(["", " ", "0", "1", "10", "100", "10000", "31/02/2027", "29/02/2028", LINK, "@name", "a\nb"]),
)
params_strategy = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), values, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    service_type=st.sampled_from([*SERVICE_TYPES, "Unknown"]),
    params=params_strategy,
    min_quantity=st.integers(0, 100),
    spread=st.integers(0, 100_000),
    dripfeed=st.booleans(),
)
def test_never_anything_but_an_order_or_a_protocol_error(
    service_type: str, params: dict[str, str], min_quantity: int, spread: int, dripfeed: bool
) -> None:
    message = None
    try:
        order = validate_add(
            service_type, params, min_quantity=min_quantity, max_quantity=min_quantity + spread, dripfeed=dripfeed
        )
    except ProtocolError as error:
        message = error.message
    if message is not None:
        assert re.fullmatch(r"Incorrect \w+|Quantity (less than minimal|more than maximal) \d+", message)
        return
    assert order.quantity >= 1
    assert order.units >= 0
    assert (order.link is None) == (service_type == "Subscriptions")
    assert not {"key", "action", "service"} & set(order.params)
    assert all(isinstance(value, str) for value in order.params.values())
