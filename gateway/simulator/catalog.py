"""The simulated panel's catalog: service types, a realistic default catalog, a big-catalog generator.

Service ids are deliberately sparse (blocks per platform), as on real panels, so that code which
confuses its own ids with the upstream's shows up in tests.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class ServiceType(StrEnum):
    """The service types of PROTOCOL.md §3; each needs its own fields on ``add``."""

    DEFAULT = "Default"
    PACKAGE = "Package"
    CUSTOM_COMMENTS = "Custom Comments"
    CUSTOM_COMMENTS_PACKAGE = "Custom Comments Package"
    MENTIONS = "Mentions"
    MENTIONS_WITH_HASHTAGS = "Mentions with Hashtags"
    MENTIONS_CUSTOM_LIST = "Mentions Custom List"
    MENTIONS_HASHTAG = "Mentions Hashtag"
    MENTIONS_USER_FOLLOWERS = "Mentions User Followers"
    MENTIONS_MEDIA_LIKERS = "Mentions Media Likers"
    COMMENT_LIKES = "Comment Likes"
    COMMENT_REPLIES = "Comment Replies"
    POLL = "Poll"
    INVITES_FROM_GROUPS = "Invites from Groups"
    SUBSCRIPTIONS = "Subscriptions"


@dataclass(frozen=True, slots=True)
class Service:
    """One service as the panel sells it; ``rate`` is per 1000 units (per package for packages)."""

    service_id: int
    name: str
    type: ServiceType
    category: str
    rate: Decimal
    min_quantity: int
    max_quantity: int
    refill: bool = False
    cancel: bool = False
    dripfeed: bool = False
    description: str = ""


def _svc(
    service_id: int,
    name: str,
    service_type: ServiceType,
    category: str,
    rate: str,
    bounds: tuple[int, int],
    *flags: str,
) -> Service:
    return Service(
        service_id=service_id,
        name=name,
        type=service_type,
        category=category,
        rate=Decimal(rate),
        min_quantity=bounds[0],
        max_quantity=bounds[1],
        refill="refill" in flags,
        cancel="cancel" in flags,
        dripfeed="dripfeed" in flags,
    )


T = ServiceType
IG_FOLLOWERS, IG_ENGAGEMENT, IG_COMMENTS = (
    "Instagram Followers",
    "Instagram Likes & Views",
    "Instagram Comments & Mentions",
)
TIKTOK, YOUTUBE, TELEGRAM, TWITTER, FACEBOOK = "TikTok", "YouTube", "Telegram", "X (Twitter)", "Facebook"
R, C, D = "refill", "cancel", "dripfeed"

# fmt: off
_DEFAULT_CATALOG: tuple[Service, ...] = (
    _svc(101, "Instagram Followers [Real] [Refill 30D]", T.DEFAULT, IG_FOLLOWERS, "1.85", (50, 100000), R, C),
    _svc(102, "Instagram Followers [Bots] [No Refill]", T.DEFAULT, IG_FOLLOWERS, "0.45", (100, 50000), C),
    _svc(111, "Instagram Likes [Instant] [Max 50K]", T.DEFAULT, IG_ENGAGEMENT, "0.27819", (10, 50000), C, D),
    _svc(112, "Instagram Likes [Drip] [Refill 30D]", T.DEFAULT, IG_ENGAGEMENT, "0.62", (20, 20000), R, D),
    _svc(113, "Instagram Reel Views [Fast]", T.DEFAULT, IG_ENGAGEMENT, "0.028", (100, 10000000), D),
    _svc(114, "Instagram Story Views [Package 1000]", T.PACKAGE, IG_ENGAGEMENT, "0.35", (1, 1)),
    _svc(121, "Instagram Custom Comments [Real]", T.CUSTOM_COMMENTS, IG_COMMENTS, "12.50", (5, 1000), C),
    _svc(122, "Instagram Custom Comments [Package of 10]", T.CUSTOM_COMMENTS_PACKAGE, IG_COMMENTS, "2.1375",
         (1, 10)),
    _svc(123, "Instagram Mentions [Usernames]", T.MENTIONS, IG_COMMENTS, "4.95", (100, 20000)),
    _svc(124, "Instagram Mentions [Hashtags]", T.MENTIONS_WITH_HASHTAGS, IG_COMMENTS, "7.40", (100, 20000)),
    _svc(125, "Instagram Mentions [Custom List]", T.MENTIONS_CUSTOM_LIST, IG_COMMENTS, "9.00", (10, 1000)),
    _svc(126, "Instagram Mentions [Hashtag Users]", T.MENTIONS_HASHTAG, IG_COMMENTS, "5.25", (500, 50000)),
    _svc(127, "Instagram Mentions [Followers Of User]", T.MENTIONS_USER_FOLLOWERS, IG_COMMENTS, "6.80",
         (500, 50000)),
    _svc(128, "Instagram Mentions [Likers]", T.MENTIONS_MEDIA_LIKERS, IG_COMMENTS, "5.90", (500, 50000)),
    _svc(129, "Instagram Comment Likes [Top Comment]", T.COMMENT_LIKES, IG_COMMENTS, "3.20", (20, 10000), C),
    _svc(131, "Instagram Auto Likes [Subscription]", T.SUBSCRIPTIONS, IG_ENGAGEMENT, "0.55", (50, 5000)),
    _svc(201, "TikTok Followers [Refill 30D]", T.DEFAULT, TIKTOK, "3.90", (100, 100000), R, C),
    _svc(202, "TikTok Likes [Fast] [No Refill]", T.DEFAULT, TIKTOK, "0.79", (50, 100000), D),
    _svc(203, "TikTok Views [Instant]", T.DEFAULT, TIKTOK, "0.0135", (100, 100000000)),
    _svc(204, "TikTok Comment Replies [Custom]", T.COMMENT_REPLIES, TIKTOK, "15.00", (5, 500)),
    _svc(301, "YouTube Views [Non Drop] [Refill]", T.DEFAULT, YOUTUBE, "1.2870", (500, 1000000), R, C),
    _svc(302, "YouTube Subscribers [Refill 30D]", T.DEFAULT, YOUTUBE, "18.00", (50, 20000), R, C),
    _svc(303, "YouTube Likes [No Refill]", T.DEFAULT, YOUTUBE, "2.75", (20, 50000)),
    _svc(304, "YouTube Community Poll Votes", T.POLL, YOUTUBE, "4.40", (100, 10000)),
    _svc(401, "Telegram Channel Members [Refill 15D]", T.DEFAULT, TELEGRAM, "1.10", (100, 100000), R, C),
    _svc(402, "Telegram Post Views [Last 10 Posts] [Package]", T.PACKAGE, TELEGRAM, "0.35", (1, 1)),
    _svc(403, "Telegram Poll Votes", T.POLL, TELEGRAM, "2.60", (50, 50000)),
    _svc(404, "Telegram Group Members [Invites From Groups]", T.INVITES_FROM_GROUPS, TELEGRAM, "8.50",
         (100, 20000)),
    _svc(501, "X (Twitter) Followers [Refill 30D]", T.DEFAULT, TWITTER, "6.20", (100, 50000), R, C),
    _svc(502, "X (Twitter) Retweets", T.DEFAULT, TWITTER, "2.90", (20, 10000), D),
    _svc(503, "X (Twitter) Poll Votes", T.POLL, TWITTER, "1.95", (100, 100000)),
    _svc(601, "Facebook Page Likes [Refill 30D]", T.DEFAULT, FACEBOOK, "4.10", (100, 50000), R),
)
# fmt: on


def default_catalog() -> tuple[Service, ...]:
    """The hand-written catalog: every service type, six platforms, realistic rates and limits."""
    return _DEFAULT_CATALOG


_PLATFORMS = ("Instagram", "TikTok", "YouTube", "Telegram", "X (Twitter)", "Facebook", "Spotify", "Twitch")
_PRODUCTS = ("Followers", "Likes", "Views", "Comments", "Shares", "Saves", "Members", "Plays", "Votes")
_QUALITIES = ("Real", "HQ", "Mixed", "Bots", "Targeted USA", "Premium", "Non Drop")
_SPEEDS = ("Instant", "Fast", "10K/Day", "Slow Drip", "1K/Hour")
# Default dominates real catalogs; the rarer types still appear so every code path is exercised.
_TYPE_WEIGHTS: tuple[tuple[ServiceType, int], ...] = (
    (T.DEFAULT, 80),
    (T.PACKAGE, 3),
    (T.CUSTOM_COMMENTS, 4),
    (T.CUSTOM_COMMENTS_PACKAGE, 1),
    (T.MENTIONS, 1),
    (T.MENTIONS_WITH_HASHTAGS, 1),
    (T.MENTIONS_CUSTOM_LIST, 1),
    (T.MENTIONS_HASHTAG, 1),
    (T.MENTIONS_USER_FOLLOWERS, 1),
    (T.MENTIONS_MEDIA_LIKERS, 1),
    (T.COMMENT_LIKES, 2),
    (T.COMMENT_REPLIES, 1),
    (T.POLL, 1),
    (T.INVITES_FROM_GROUPS, 1),
    (T.SUBSCRIPTIONS, 1),
)


def generate_catalog(count: int, *, seed: int = 0, first_id: int = 1) -> tuple[Service, ...]:
    """A large, varied, deterministic catalog (e.g. 5,000 services) for benchmarks and sync tests."""
    rng = random.Random(seed)
    types = [t for t, _ in _TYPE_WEIGHTS]
    weights = [w for _, w in _TYPE_WEIGHTS]
    services = []
    for index in range(count):
        service_type = rng.choices(types, weights)[0]
        platform = rng.choice(_PLATFORMS)
        packaged = service_type in (T.PACKAGE, T.CUSTOM_COMMENTS_PACKAGE)
        minimum = 1 if packaged else rng.choice((10, 20, 50, 100, 500, 1000))
        maximum = rng.choice((1, 10)) if packaged else minimum * rng.choice((10, 100, 1000, 10000))
        # Log-normal rates: mostly cents, a long tail of expensive services, as on real panels.
        rate = Decimal(str(round(rng.lognormvariate(0.3, 1.4), 4))).max(Decimal("0.001"))
        refill = rng.random() < 0.35
        services.append(
            Service(
                service_id=first_id + index,
                name=(
                    f"{platform} {rng.choice(_PRODUCTS)} [{rng.choice(_QUALITIES)}] "
                    f"[{rng.choice(_SPEEDS)}]{' [Refill 30D]' if refill else ''} #{first_id + index}"
                ),
                type=service_type,
                category=f"{platform} {service_type.value}",
                rate=rate,
                min_quantity=minimum,
                max_quantity=maximum,
                refill=refill,
                cancel=rng.random() < 0.5,
                dripfeed=service_type is T.DEFAULT and rng.random() < 0.3,
            )
        )
    return tuple(services)


def service_to_mapping(service: Service) -> dict[str, Any]:
    """The service in the documented ``services`` shape (used by the control plane)."""
    return {
        "service": service.service_id,
        "name": service.name,
        "type": service.type.value,
        "category": service.category,
        "rate": str(service.rate),
        "min": service.min_quantity,
        "max": service.max_quantity,
        "refill": service.refill,
        "cancel": service.cancel,
        "dripfeed": service.dripfeed,
        "desc": service.description,
    }


def service_from_mapping(raw: Mapping[str, Any]) -> Service:
    """Read a service given in the ``services`` shape (either dialect); ``ValueError`` if unusable."""
    try:
        service_id = int(raw["service"])
        rate = Decimal(str(raw["rate"]))
        minimum, maximum = int(raw.get("min", 1)), int(raw.get("max", 1))
        service_type = ServiceType(raw.get("type", ServiceType.DEFAULT.value))
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise ValueError(f"unusable service {dict(raw)!r}: {exc}") from exc
    if not rate.is_finite() or rate < 0 or minimum < 1 or maximum < minimum:
        raise ValueError(f"unusable service {dict(raw)!r}: rate or limits out of range")
    return Service(
        service_id=service_id,
        name=str(raw.get("name", f"Service {service_id}")),
        type=service_type,
        category=str(raw.get("category", "Other")),
        rate=rate,
        min_quantity=minimum,
        max_quantity=maximum,
        refill=bool(raw.get("refill", False)),
        cancel=bool(raw.get("cancel", False)),
        dripfeed=bool(raw.get("dripfeed", False)),
        description=str(raw.get("desc", "")),
    )


def index_catalog(services: Iterable[Service]) -> dict[int, Service]:
    """Services by id; ``ValueError`` on a duplicate id (a catalog with two meanings for one id)."""
    by_id: dict[int, Service] = {}
    for service in services:
        if service.service_id in by_id:
            raise ValueError(f"duplicate service id {service.service_id}")
        by_id[service.service_id] = service
    return by_id
