"""Running the simulator: in-process on the caller's loop, on a thread of its own, or blocking.

``running_simulator`` suits async tests; ``SimulatorThread`` suits synchronous code and code that
runs its own event loop (the simulator then has its loop on its own thread); ``serve`` and
``main`` are for ``gateway simulate``. All bind to loopback unless told otherwise; port 0 picks a
free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from types import TracebackType

import uvicorn

from gateway.simulator.app import create_app
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.engine import Panel
from gateway.simulator.faults import FaultRule, quiet_simulated_drops
from gateway.simulator.recorder import RecordedRequest
from gateway.simulator.simulation import Simulation

LOOPBACK = "127.0.0.1"
_STARTUP_TIMEOUT = 10.0


class RunningSimulator:
    """A simulated panel that is up: its address, its key, and handles to steer it from Python.

    Methods are safe to call from any thread; ``state`` (the ``Panel``) takes its own lock.
    """

    def __init__(self, simulation: Simulation, host: str, port: int) -> None:
        self.simulation = simulation
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        """``http://host:port`` (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The full v2 endpoint URL, what a provider is configured with."""
        return f"{self.base_url}/api/v2"

    @property
    def control_url(self) -> str:
        """The control plane's root URL."""
        return f"{self.base_url}/control"

    @property
    def api_key(self) -> str:
        """The one key the panel accepts."""
        return self.simulation.config.api_key

    @property
    def config(self) -> SimulatorConfig:
        """The configuration the panel started with."""
        return self.simulation.config

    @property
    def state(self) -> Panel:
        """The panel itself: orders, refills, balance, catalog, clock."""
        return self.simulation.panel

    def set_faults(self, *rules: FaultRule) -> list[int]:
        """Replace all armed faults with ``rules`` (none: clear)."""
        return self.simulation.faults.replace(list(rules))

    def add_fault(self, rule: FaultRule) -> int:
        """Arm one more fault; returns its id."""
        return self.simulation.faults.add(rule)

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self.simulation.faults.clear()

    def requests(self, action: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, optionally of one action."""
        return self.simulation.requests.records(action)

    def request_count(self, action: str | None = None) -> int:
        """How many requests (of one action) arrived."""
        return self.simulation.requests.count(action)

    def request_counts(self) -> dict[str, int]:
        """Requests per action."""
        return self.simulation.requests.counts()

    def set_balance(self, amount: Decimal | str) -> Decimal:
        """Set the reseller balance."""
        return self.simulation.panel.set_balance(Decimal(amount))

    def advance(self, seconds: float) -> float:
        """Move simulated time ahead."""
        return self.simulation.panel.advance(seconds)

    def reset(self) -> None:
        """Back to the configured start: orders, balance, catalog, clock, faults, request log."""
        self.simulation.reset()


class _GuestServer(uvicorn.Server):
    """A uvicorn server that lives inside someone else's process: the host owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def running_simulator(
    config: SimulatorConfig | None = None, *, host: str = LOOPBACK, port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve a simulated panel on the running event loop for the duration of the block."""
    simulation = Simulation(config)
    app = create_app(simulation)
    quiet_simulated_drops()
    sock = _bind(host, port)
    server_config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1)
    server = _GuestServer(server_config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_STARTUP_TIMEOUT):
            while not server.started:
                if serving.done():
                    serving.result()  # raises what stopped the server
                    raise RuntimeError("the simulator stopped during startup")
                await asyncio.sleep(0.005)
        yield RunningSimulator(simulation, host, sock.getsockname()[1])
    finally:
        app.released.set()  # end hanging requests, so shutdown does not wait for their clients
        server.should_exit = True
        await serving
        sock.close()


class SimulatorThread:
    """A simulated panel on a thread with its own event loop; a context manager for sync code.

    ``with SimulatorThread(config) as sim:`` gives the same ``RunningSimulator`` as the async
    runner; tests whose own loop runs the gateway use this so the two never share a loop.
    """

    def __init__(self, config: SimulatorConfig | None = None, *, host: str = LOOPBACK, port: int = 0) -> None:
        self._config = config
        self._host = host
        self._port = port
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running: RunningSimulator | None = None
        self._failure: BaseException | None = None

    def start(self) -> RunningSimulator:
        """Start serving; returns once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="smm-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(_STARTUP_TIMEOUT) or self._running is None:
            self.stop()
            raise RuntimeError("the simulator did not start") from self._failure
        return self._running

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(_STARTUP_TIMEOUT)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as failure:  # reported to start(), which is waiting for us
            self._failure = failure
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_simulator(self._config, host=self._host, port=self._port) as running:
            self._running = running
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> RunningSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(host: str = LOOPBACK, port: int = 8765, config: SimulatorConfig | None = None) -> None:
    """Serve a simulated panel until interrupted (Ctrl-C / SIGTERM). Blocking."""
    simulation = Simulation(config)
    app = create_app(simulation)
    quiet_simulated_drops()
    # Hanging requests get one second of grace at shutdown, then their tasks are cancelled.
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, lifespan="off", timeout_graceful_shutdown=1))
    server.run()
