"""A client of this panel's API v2 for Python 3.8 or newer, with nothing to install.

Run it to see your balance and the services:

    python3 example.py YOUR_API_KEY

or use it from your own code:

    from example import Api

    api = Api("YOUR_API_KEY")
    order = api.order(service=1, link="https://instagram.com/p/Cxyz", quantity=1000)
    if "error" in order:
        raise SystemExit(order["error"])
    print(api.status(order["order"]))

Every method answers the decoded JSON. A call the panel refuses answers {"error": "..."} with one of
the messages on the API page. When the answer does not arrive (network down, timeout) an OSError is
raised: the call may or may not have been done. To make an order safe to send again, give it a key of
your own and send the same key when you retry (see Idempotency on the API page):

    key = str(uuid.uuid4())
    order = api.order(service=1, link="https://instagram.com/p/Cxyz", quantity=1000, idempotency_key=key)
"""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

API_URL = "https://your-panel.example/api/v2"


class Api:
    def __init__(self, api_key: str, api_url: str = API_URL, timeout: float = 60) -> None:
        if not api_url.startswith(("https://", "http://")):
            raise ValueError("the API URL must be http(s)")
        self.api_key = api_key
        self.api_url = api_url
        self.timeout = timeout

    def call(self, action: str, **params: object) -> Any:
        """POST the parameters form-encoded; the answer is always HTTP 200 JSON, errors included."""
        data = urllib.parse.urlencode({"key": self.api_key, "action": action, **params}).encode()
        request = urllib.request.Request(self.api_url, data=data, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as answer:
            return json.load(answer)

    def services(self) -> Any:
        return self.call("services")

    def balance(self) -> Any:
        return self.call("balance")

    def order(self, **fields: object) -> Any:
        """service, link, quantity, and whatever else the service's type needs."""
        return self.call("add", **fields)

    def status(self, order: int) -> Any:
        return self.call("status", order=order)

    def multi_status(self, orders: Iterable[int]) -> Any:
        return self.call("status", orders=",".join(map(str, orders)))

    def refill(self, order: int) -> Any:
        return self.call("refill", order=order)

    def multi_refill(self, orders: Iterable[int]) -> Any:
        return self.call("refill", orders=",".join(map(str, orders)))

    def refill_status(self, refill: int) -> Any:
        return self.call("refill_status", refill=refill)

    def multi_refill_status(self, refills: Iterable[int]) -> Any:
        return self.call("refill_status", refills=",".join(map(str, refills)))

    def cancel(self, orders: Iterable[int]) -> Any:
        return self.call("cancel", orders=",".join(map(str, orders)))


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 example.py YOUR_API_KEY")
    api = Api(sys.argv[1])
    balance = api.balance()
    if "error" in balance:
        raise SystemExit(balance["error"])
    print("balance:", balance["balance"], balance["currency"])
    for service in api.services():
        print(service["service"], service["type"], service["name"], service["rate"], sep="\t")


if __name__ == "__main__":
    main()
