"""Calling upstream providers: the one way the domain reaches an upstream panel.

:class:`ProviderGateway` looks a provider up (its URL, key and whether it is enabled, kept in
:class:`ProviderDirectory`), takes its pooled client, attributes the call to an order or a refill
in the call log (:mod:`gateway.providers.calllog`) and turns every reason a provider cannot be
called into one error the callers already handle (:class:`ProviderUnavailable`, a "definitely
not sent"). The adapter (:mod:`gateway.upstream`) does the wire; this does the bookkeeping.
"""

from gateway.providers.directory import ProviderAccess, ProviderDirectory
from gateway.providers.gateway import ProviderGateway, ProviderUnavailable

__all__ = ["ProviderAccess", "ProviderDirectory", "ProviderGateway", "ProviderUnavailable"]
