from tests.orders.conftest import settings, shop, sim_config

__all__ = ["settings", "shop", "sim_config"]
