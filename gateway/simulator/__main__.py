"""``python -m gateway.simulator``: the same as ``gateway simulate``."""

from gateway.simulator.command import main

raise SystemExit(main())
