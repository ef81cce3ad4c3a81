"""Fixtures of the reliability suite: real processes (tests.processes) and the in-process shop."""

from tests.orders.conftest import settings, shop, sim_config
from tests.processes import GatewayProcess, gateway, process_env, wait_for, worker_process

__all__ = ["GatewayProcess", "gateway", "process_env", "settings", "shop", "sim_config", "wait_for", "worker_process"]
