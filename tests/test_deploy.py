"""deploy/ checked without Docker, a cluster or systemd: every file parses and holds together.

Each check is a function returning the problems it found, so the tests below assert both that the
real files have none and that a broken copy (a renamed setting, a dangling reference, a wrong
probe...) is caught.
"""

from __future__ import annotations

import configparser
import contextlib
import copy
import io
import json
import re
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import build_parser
from gateway.settings import Settings
from gateway.simulator.command import build_parser as build_simulator_parser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
ENV_EXAMPLE = DEPLOY / "gateway.env.example"

SETTINGS = frozenset(f"GATEWAY_{name.upper()}" for name in Settings.model_fields)
# Anything that carries a credential: SecretStr fields, and the database URL (it holds a password).
SECRET_SETTINGS = frozenset(
    {f"GATEWAY_{name.upper()}" for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)}
    | {"GATEWAY_DATABASE_URL"}
)
SETTING_NAME = re.compile(r"\bGATEWAY_[A-Z0-9_]*[A-Z0-9]\b")

# uvicorn's graceful shutdown in `gateway serve` (cli.py: timeout_graceful_shutdown=30).
SERVE_DRAIN_SECONDS = 30
POSTGRES_DEFAULT_MAX_CONNECTIONS = 100
CONNECTION_HEADROOM = 10  # superuser_reserved_connections, migrations, psql, monitoring

Problems = list[str]


# --- loading --------------------------------------------------------------------------------------


def deploy_files() -> list[Path]:
    return sorted(path for path in DEPLOY.rglob("*") if path.is_file())


def k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(K8S.glob("*.y*ml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return objects


def compose_file() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def systemd_units() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(SYSTEMD.glob("*.service"))}


def parse_unit(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",), comment_prefixes=("#", ";"))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(text)
    return unit


def env_file_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


# --- settings and commands ------------------------------------------------------------------------


def unknown_settings(text: str) -> set[str]:
    """GATEWAY_* names in ``text`` that are not fields of gateway.settings.Settings."""
    return set(SETTING_NAME.findall(text)) - SETTINGS


def gateway_command_problems(args: list[str]) -> Problems:
    """``gateway <args>`` must parse with the real CLI (subcommand and options)."""
    if not args:
        return ["no gateway subcommand"]
    if args[0] == "simulate":  # its options live in the simulator's own parser (cli.main)
        parser, rest = build_simulator_parser(), args[1:]
    else:
        parser, rest = build_parser(), args
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(rest)
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()[-1:] or ["exits instead of running"]
        return [f"`gateway {shlex.join(args)}`: {message[0]}"]
    return []


def gateway_args(argv: list[str]) -> list[str] | None:
    """The arguments after the gateway program in ``argv``, or None when it runs something else."""
    if argv and Path(argv[0]).name == "gateway":
        return argv[1:]
    return None


def option_value(args: list[str], option: str, default: str | None = None) -> str | None:
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return default


def connections_per_process(config: dict[str, str]) -> int:
    pool = int(config.get("GATEWAY_DB_POOL_SIZE", Settings.model_fields["db_pool_size"].default))
    overflow = int(config.get("GATEWAY_DB_MAX_OVERFLOW", Settings.model_fields["db_max_overflow"].default))
    # The engine's pool (POOL + OVERFLOW) and the v2 hot path's own asyncpg pool (POOL).
    return 2 * pool + overflow


# --- Kubernetes -----------------------------------------------------------------------------------


def find(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") in ("Deployment", "Job", "StatefulSet", "DaemonSet", "CronJob")]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def container_args(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def by_subcommand(objects: list[dict[str, Any]], subcommand: str) -> list[dict[str, Any]]:
    """Workloads whose first container runs ``gateway <subcommand>``."""
    found = []
    for workload in workloads(objects):
        args = gateway_args(container_args(pod_spec(workload)["containers"][0]))
        if args and args[0] == subcommand:
            found.append(workload)
    return found


def k8s_problems(objects: list[dict[str, Any]]) -> Problems:
    problems: Problems = []
    for obj in objects:
        if not (obj.get("apiVersion") and obj.get("kind") and (obj.get("metadata") or {}).get("name")):
            problems.append(f"object without apiVersion/kind/metadata.name: {str(obj)[:80]}")
    if problems:
        return problems

    kinds = [o["kind"] for o in objects]
    for kind, count in {
        "Namespace": 1,
        "ConfigMap": 1,
        "Secret": 1,
        "Job": 1,
        "Deployment": 2,
        "Service": 1,
        "HorizontalPodAutoscaler": 1,
    }.items():
        if kinds.count(kind) < count:
            problems.append(f"expected at least {count} {kind}, found {kinds.count(kind)}")

    namespaces = {o["metadata"]["name"] for o in find(objects, "Namespace")}
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] != "Namespace" and namespace not in namespaces:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: namespace {namespace!r} is not defined")

    configmaps = {o["metadata"]["name"]: o.get("data") or {} for o in find(objects, "ConfigMap")}
    secrets = {
        o["metadata"]["name"]: {**(o.get("data") or {}), **(o.get("stringData") or {})} for o in find(objects, "Secret")
    }
    for name, data in configmaps.items():
        for key, value in data.items():
            if not isinstance(value, str):
                problems.append(f"ConfigMap/{name}: {key} is {type(value).__name__}, must be a string")
            if key in SECRET_SETTINGS:
                problems.append(f"ConfigMap/{name}: {key} is a secret and belongs in a Secret")
    all_secret_keys = set().union(*secrets.values()) if secrets else set()
    for required in ("GATEWAY_DATABASE_URL", "GATEWAY_ADMIN_TOKEN"):
        if required not in all_secret_keys:
            problems.append(f"no Secret holds {required}")

    for workload in workloads(objects):
        problems += pod_problems(workload, configmaps, secrets)
    for deployment in find(objects, "Deployment"):
        selector = deployment["spec"].get("selector", {}).get("matchLabels", {})
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.append(
                f"Deployment/{deployment['metadata']['name']}: selector {selector} misses pod labels {labels}"
            )

    problems += service_problems(objects)
    problems += hpa_problems(objects)
    problems += api_problems(objects, configmaps)

    workers = by_subcommand(objects, "worker")
    if len(workers) != 1 or workers[0]["kind"] != "Deployment" or workers[0]["spec"].get("replicas") != 2:
        problems.append("expected one worker Deployment (`gateway worker`) with 2 replicas")
    migrations = by_subcommand(objects, "migrate")
    if len(migrations) != 1 or migrations[0]["kind"] != "Job" or "backoffLimit" not in migrations[0]["spec"]:
        problems.append("expected one Job running `gateway migrate`, with a backoffLimit")
    elif pod_spec(migrations[0]).get("restartPolicy") not in ("Never", "OnFailure"):
        problems.append("the migrate Job needs restartPolicy Never or OnFailure")
    return problems


def pod_problems(workload: dict[str, Any], configmaps: dict[str, Any], secrets: dict[str, Any]) -> Problems:
    where = f"{workload['kind']}/{workload['metadata']['name']}"
    spec = pod_spec(workload)
    problems: Problems = []
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in spec.get("containers", []):
        here = f"{where} container {container.get('name')}"
        args = gateway_args(container_args(container))
        if args is None:
            problems.append(f"{here}: does not run the gateway program: {container_args(container)}")
        else:
            problems += [f"{here}: {p}" for p in gateway_command_problems(args)]
        for source in container.get("envFrom", []):
            if "configMapRef" in source and source["configMapRef"]["name"] not in configmaps:
                problems.append(f"{here}: envFrom ConfigMap {source['configMapRef']['name']!r} is not defined")
            if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                problems.append(f"{here}: envFrom Secret {source['secretRef']['name']!r} is not defined")
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {})
            for key, defined in (("configMapKeyRef", configmaps), ("secretKeyRef", secrets)):
                if key in ref and ref[key].get("key") not in defined.get(ref[key]["name"], {}):
                    problems.append(f"{here}: {variable['name']} refers to missing {key} {ref[key]}")
        context = container.get("securityContext", {})
        if not (context.get("runAsNonRoot") or spec.get("securityContext", {}).get("runAsNonRoot")):
            problems.append(f"{here}: not runAsNonRoot")
        if context.get("runAsUser", spec.get("securityContext", {}).get("runAsUser")) == 0:
            problems.append(f"{here}: runAsUser 0")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{here}: allowPrivilegeEscalation must be false")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{here}: root filesystem is not read-only")
        tmp = [m for m in container.get("volumeMounts", []) if m.get("mountPath") == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            problems.append(f"{here}: /tmp is not an emptyDir")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(bound, {})):
                problems.append(f"{here}: resources.{bound} needs cpu and memory")
    return problems


def service_problems(objects: list[dict[str, Any]]) -> Problems:
    problems: Problems = []
    for service in find(objects, "Service"):
        selector = service["spec"].get("selector", {})
        targets = [
            d
            for d in find(objects, "Deployment")
            if selector
            and all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        ]
        if not targets:
            problems.append(f"Service/{service['metadata']['name']}: selector {selector} matches no Deployment's pods")
            continue
        ports = [p for d in targets for c in pod_spec(d)["containers"] for p in c.get("ports", [])]
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            if not any(target in (p.get("name"), p["containerPort"]) for p in ports):
                problems.append(f"Service/{service['metadata']['name']}: targetPort {target!r} is no container port")
    return problems


def hpa_problems(objects: list[dict[str, Any]]) -> Problems:
    problems: Problems = []
    api = by_subcommand(objects, "serve")
    for hpa in find(objects, "HorizontalPodAutoscaler"):
        where = f"HorizontalPodAutoscaler/{hpa['metadata']['name']}"
        target = hpa["spec"]["scaleTargetRef"]
        if hpa["apiVersion"] != "autoscaling/v2":
            problems.append(f"{where}: apiVersion must be autoscaling/v2")
        if target.get("kind") != "Deployment" or not find(objects, "Deployment", target.get("name")):
            problems.append(f"{where}: scaleTargetRef {target} is not a defined Deployment")
        elif not api or target["name"] != api[0]["metadata"]["name"]:
            problems.append(f"{where}: scales {target['name']!r}, not the API Deployment")
        if (hpa["spec"].get("minReplicas"), hpa["spec"].get("maxReplicas")) != (2, 10):
            problems.append(f"{where}: expected minReplicas 2, maxReplicas 10")
        cpu = [m for m in hpa["spec"].get("metrics", []) if m.get("resource", {}).get("name") == "cpu"]
        if not cpu or cpu[0]["resource"]["target"].get("averageUtilization") != 70:
            problems.append(f"{where}: expected a CPU utilization target of 70%")
    return problems


def api_problems(objects: list[dict[str, Any]], configmaps: dict[str, Any]) -> Problems:
    api = by_subcommand(objects, "serve")
    if len(api) != 1 or api[0]["kind"] != "Deployment":
        return ["expected exactly one Deployment running `gateway serve`"]
    deployment = api[0]
    spec = pod_spec(deployment)
    container = spec["containers"][0]
    args = gateway_args(container_args(container)) or []
    problems: Problems = []
    if deployment["spec"].get("replicas") != 2:
        problems.append("the API Deployment should ask for 2 replicas")
    if "--no-worker" not in args or option_value(args, "--host") != "0.0.0.0":
        problems.append(f"the API must run `serve --host 0.0.0.0 --no-worker`, runs {args}")
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    listening = int(option_value(args, "--port") or _setting(configmaps, "GATEWAY_PORT") or 8080)
    if listening not in ports.values():
        problems.append(f"the API listens on {listening} but declares container ports {ports}")
    for probe_name, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        http = container.get(probe_name, {}).get("httpGet", {})
        port = ports.get(http.get("port"), http.get("port"))
        if http.get("path") != path or port != listening:
            problems.append(f"the API {probe_name} must GET {path} on port {listening}, has {http}")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if len(pre_stop) != 2 or pre_stop[0] != "sleep":
        problems.append("the API needs a preStop sleep so endpoints drain before SIGTERM")
    elif int(pre_stop[1]) + SERVE_DRAIN_SECONDS > grace:
        problems.append(f"preStop {pre_stop[1]} s + drain {SERVE_DRAIN_SECONDS} s exceed the grace period {grace} s")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if (
        annotations.get("prometheus.io/scrape") != "true"
        or annotations.get("prometheus.io/path") != "/metrics"
        or annotations.get("prometheus.io/port") != str(listening)
    ):
        problems.append(f"the API pods need prometheus.io scrape annotations for /metrics on {listening}")
    return problems


def _setting(configmaps: dict[str, Any], name: str) -> str | None:
    return next((data[name] for data in configmaps.values() if name in data), None)


def k8s_peak_connections(objects: list[dict[str, Any]]) -> int:
    """Database connections at full scale: every process' pool (api at HPA max, workers)."""
    config: dict[str, str] = {}
    for configmap in find(objects, "ConfigMap"):
        config.update(configmap.get("data") or {})
    processes = 0
    for subcommand in ("serve", "worker"):
        for deployment in by_subcommand(objects, subcommand):
            replicas = deployment["spec"].get("replicas", 1)
            for hpa in find(objects, "HorizontalPodAutoscaler"):
                if hpa["spec"]["scaleTargetRef"].get("name") == deployment["metadata"]["name"]:
                    replicas = hpa["spec"]["maxReplicas"]
            args = gateway_args(container_args(pod_spec(deployment)["containers"][0])) or []
            processes += replicas * int(option_value(args, "--workers", "1") or 1)
    return processes * connections_per_process(config)


# --- docker compose -------------------------------------------------------------------------------


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def is_gateway_service(service: dict[str, Any]) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build.get("dockerfile") == "deploy/Dockerfile"


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    return {name: {} for name in deps} if isinstance(deps, list) else deps


def compose_problems(compose: dict[str, Any]) -> Problems:
    problems: Problems = []
    services = compose.get("services", {})
    for required in ("postgres", "migrate", "api", "worker", "simulator"):
        if required not in services:
            problems.append(f"compose: no {required!r} service")
    if problems:
        return problems
    volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for dependency in depends_on(service):
            if dependency not in services:
                problems.append(f"compose: {name} depends on undefined service {dependency!r}")
            elif services[dependency].get("profiles") and not service.get("profiles"):
                problems.append(f"compose: {name} depends on {dependency}, which only runs in a profile")
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount.get("source")
            if source and not source.startswith((".", "/")) and source not in volumes:
                problems.append(f"compose: {name} mounts undeclared volume {source!r}")
        if is_gateway_service(service):
            build = service["build"]
            if (DEPLOY / build.get("context", ".")).resolve() != ROOT:
                problems.append(f"compose: {name} must build with the repository root as context")
            problems += [f"compose: {name}: {p}" for p in gateway_command_problems(compose_command(service))]
            env_files = service.get("env_file", [])
            for env_file in [env_files] if isinstance(env_files, str) else env_files:
                path = env_file if isinstance(env_file, str) else env_file["path"]
                if not (DEPLOY / f"{path}.example").is_file():
                    problems.append(f"compose: {name} reads {path}, but {path}.example does not exist")
        elif name != "postgres":
            problems.append(f"compose: {name} does not run the gateway image")

    postgres = services["postgres"]
    if not str(postgres.get("image", "")).startswith("postgres:16") or "test" not in postgres.get("healthcheck", {}):
        problems.append("compose: postgres must be postgres:16 with a healthcheck")
    if not postgres.get("volumes"):
        problems.append("compose: postgres keeps its data in no volume")
    if compose_command(services["migrate"]) != ["migrate"] or services["migrate"].get("restart") != "no":
        problems.append("compose: migrate must run `gateway migrate` with restart 'no'")
    if depends_on(services["migrate"]).get("postgres", {}).get("condition") != "service_healthy":
        problems.append("compose: migrate must wait for postgres to be service_healthy")
    for name in ("api", "worker"):
        if depends_on(services[name]).get("migrate", {}).get("condition") != "service_completed_successfully":
            problems.append(f"compose: {name} must wait for migrate: service_completed_successfully")
    api = services["api"]
    api_args = compose_command(api)
    if api_args[:1] != ["serve"] or "--no-worker" not in api_args or option_value(api_args, "--host") != "0.0.0.0":
        problems.append(f"compose: api must run `serve --host 0.0.0.0 ... --no-worker`, runs {api_args}")
    if not any(str(port).endswith(":8080") for port in api.get("ports", [])):
        problems.append("compose: api must publish port 8080")
    if "/ready" not in json.dumps(api.get("healthcheck", {}).get("test", "")):
        problems.append("compose: the api healthcheck must probe /ready")
    if compose_command(services["worker"]) != ["worker"]:
        problems.append("compose: worker must run `gateway worker`")
    simulator = services["simulator"]
    if "demo" not in simulator.get("profiles", []) or compose_command(simulator)[:1] != ["simulate"]:
        problems.append("compose: simulator must run `gateway simulate` in the demo profile")
    return problems


def compose_peak_connections(compose: dict[str, Any], env: dict[str, str]) -> int:
    processes = 0
    for service in compose["services"].values():
        args = compose_command(service)
        if is_gateway_service(service) and args[:1] == ["serve"]:
            processes += int(option_value(args, "--workers", "1") or 1)
        elif is_gateway_service(service) and args[:1] == ["worker"]:
            processes += 1
    return processes * connections_per_process(env)


# --- Dockerfile -----------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def dockerfile_problems(text: str) -> Problems:
    instructions = dockerfile_instructions(text)
    problems: Problems = []
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    if len(stages) < 2:
        return ["Dockerfile: not multi-stage"]
    build_args = dict(
        value.split("=", 1) for keyword, value in instructions[: stages[0]] if keyword == "ARG" and "=" in value
    )
    for index in stages:
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: build_args.get(m[1], m[0]), instructions[index][1].split()[0])
        if image != "python:3.11-slim":
            problems.append(f"Dockerfile: stage based on {image!r}, expected python:3.11-slim")
    final = instructions[stages[-1] :]
    for keyword, value in instructions:
        if keyword == "ADD" and re.search(r"https?://", value):
            problems.append(f"Dockerfile: ADD from a URL: {value}")
    for keyword, value in final:
        if keyword == "RUN" and re.search(r"\b(gcc|g\+\+|clang|build-essential|make|cc)\b", value):
            problems.append(f"Dockerfile: the final image installs or runs a compiler: {value}")
    values = {}
    for keyword, value in final:
        values.setdefault(keyword, []).append(value)
    user = (values.get("USER") or ["root"])[-1].split(":")[0]
    if user in ("root", "0"):
        problems.append("Dockerfile: the final image runs as root (no non-root USER)")
    if not any("/health" in v and not v.upper().startswith("NONE") for v in values.get("HEALTHCHECK", [])):
        problems.append("Dockerfile: no HEALTHCHECK on /health")
    if "8080" not in " ".join(values.get("EXPOSE", [])).split():
        problems.append("Dockerfile: does not EXPOSE 8080")
    if not any(v.startswith("--from=") and "/opt/venv" in v for v in values.get("COPY", [])):
        problems.append("Dockerfile: the final image does not copy the venv from the builder")
    try:
        entrypoint = json.loads(values.get("ENTRYPOINT", ["null"])[-1])
        cmd = json.loads(values.get("CMD", ["null"])[-1])
    except json.JSONDecodeError:
        return [*problems, "Dockerfile: ENTRYPOINT and CMD must be JSON (exec form, so signals reach gateway)"]
    if entrypoint != ["gateway"]:
        problems.append(f"Dockerfile: ENTRYPOINT must be ['gateway'], is {entrypoint}")
    if not isinstance(cmd, list) or cmd[:1] != ["serve"] or "--no-worker" not in cmd:
        problems.append(f"Dockerfile: CMD must be `serve --host 0.0.0.0 --no-worker` (no migrate at start), is {cmd}")
    elif option_value(cmd, "--host") != "0.0.0.0":
        problems.append("Dockerfile: CMD must listen on 0.0.0.0")
    else:
        problems += [f"Dockerfile: {p}" for p in gateway_command_problems(cmd)]
    return problems


def dockerignore_problems(dockerfile: str, dockerignore: str) -> Problems:
    """Every source the Dockerfile copies from the context exists and is allow-listed."""
    patterns = [line.strip() for line in dockerignore.splitlines() if line.strip() and not line.startswith("#")]
    problems: Problems = []
    if patterns[:1] != ["*"]:
        problems.append("Dockerfile.dockerignore: should start with `*` (allow-list the build inputs)")
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for keyword, value in dockerfile_instructions(dockerfile):
        if keyword != "COPY" or value.startswith("--from="):
            continue
        for source in [part for part in value.split() if not part.startswith("--")][:-1]:
            source = source.rstrip("/")
            if not (ROOT / source).exists():
                problems.append(f"Dockerfile: COPY {source}: not in the repository")
            if source not in allowed:
                problems.append(f"Dockerfile.dockerignore: {source} is copied but not allow-listed")
    return problems


# --- systemd --------------------------------------------------------------------------------------


def systemd_problems(units: dict[str, str]) -> Problems:
    problems: Problems = []
    expected = {"smm-gateway-api.service", "smm-gateway-worker.service", "smm-gateway-migrate.service"}
    if set(units) != expected:
        return [f"systemd: expected units {sorted(expected)}, found {sorted(units)}"]
    parsed = {}
    for name, text in units.items():
        try:
            parsed[name] = parse_unit(text)
        except configparser.Error as exc:
            problems.append(f"{name}: not INI: {exc}")
    if problems:
        return problems
    for name, unit in parsed.items():
        if not (unit.has_section("Unit") and unit.has_section("Service")):
            problems.append(f"{name}: needs [Unit] and [Service]")
    if problems:
        return problems
    for name, unit in parsed.items():
        service = unit["Service"]
        argv = shlex.split(service.get("ExecStart", ""))
        if not argv or not argv[0].startswith("/") or Path(argv[0]).name != "gateway":
            problems.append(f"{name}: ExecStart must run the gateway binary by absolute path, runs {argv}")
        else:
            problems += [f"{name}: {p}" for p in gateway_command_problems(argv[1:])]
        if service.get("User", "root") in ("root", "0"):
            problems.append(f"{name}: needs a dedicated User")
        if service.get("EnvironmentFile", "").lstrip("-") != "/etc/smm-gateway/gateway.env":
            problems.append(f"{name}: EnvironmentFile must be /etc/smm-gateway/gateway.env")
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
            "ProtectHome": "yes",
            "KillSignal": "SIGTERM",
            "TimeoutStopSec": "45",
        }.items():
            if service.get(key) != value:
                problems.append(f"{name}: {key}={value} expected, has {service.get(key)!r}")
        for section in ("Unit", "Install"):
            for key in ("After", "Before", "Requires", "Wants", "RequiredBy", "WantedBy"):
                for other in unit.get(section, key, fallback="").split():
                    if other.startswith("smm-gateway") and other not in units:
                        problems.append(f"{name}: {key} names undefined unit {other}")

    migrate = parsed["smm-gateway-migrate.service"]
    if migrate["Service"].get("Type") != "oneshot" or shlex.split(migrate["Service"]["ExecStart"])[1:] != ["migrate"]:
        problems.append("smm-gateway-migrate.service: must be Type=oneshot running `gateway migrate`")
    dependents = {"smm-gateway-api.service", "smm-gateway-worker.service"}
    if not dependents <= set(migrate["Unit"].get("Before", "").split()):
        problems.append("smm-gateway-migrate.service: must be Before= api and worker")
    if not dependents <= set(migrate.get("Install", "RequiredBy", fallback="").split()):
        problems.append("smm-gateway-migrate.service: must be RequiredBy= api and worker")
    for name in sorted(dependents):
        unit = parsed[name]
        if unit["Service"].get("Restart") != "on-failure":
            problems.append(f"{name}: Restart=on-failure expected")
        if "smm-gateway-migrate.service" not in unit["Unit"].get("After", "").split():
            problems.append(f"{name}: must start After= smm-gateway-migrate.service")
    api_args = shlex.split(parsed["smm-gateway-api.service"]["Service"]["ExecStart"])[1:]
    worker_args = shlex.split(parsed["smm-gateway-worker.service"]["Service"]["ExecStart"])[1:]
    if api_args[:1] != ["serve"] or "--no-worker" not in api_args or worker_args != ["worker"]:
        problems.append("systemd: api must run `serve ... --no-worker` and worker `worker`")
    return problems


# --- the real files ------------------------------------------------------------------------------


def test_every_deliverable_exists() -> None:
    names = {str(path.relative_to(DEPLOY)) for path in deploy_files()}
    expected = {
        "Dockerfile",
        "Dockerfile.dockerignore",
        "README.md",
        "docker-compose.yml",
        "gateway.env.example",
        "systemd/smm-gateway-api.service",
        "systemd/smm-gateway-worker.service",
        "systemd/smm-gateway-migrate.service",
        "kubernetes/namespace.yaml",
        "kubernetes/configmap.yaml",
        "kubernetes/secret.yaml",
        "kubernetes/migrate-job.yaml",
        "kubernetes/api-deployment.yaml",
        "kubernetes/api-service.yaml",
        "kubernetes/api-hpa.yaml",
        "kubernetes/worker-deployment.yaml",
        "kubernetes/kustomization.yaml",
    }
    assert expected <= names


def test_every_yaml_file_parses() -> None:
    yaml_files = [path for path in deploy_files() if path.suffix in (".yml", ".yaml")]
    assert len(yaml_files) >= 10
    for path in yaml_files:
        assert [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None], path


def test_every_setting_named_in_deploy_is_real() -> None:
    unknown = {str(path.relative_to(DEPLOY)): unknown_settings(path.read_text()) for path in deploy_files()}
    assert {path: names for path, names in unknown.items() if names} == {}


def test_env_example_documents_every_setting_and_loads() -> None:
    text = ENV_EXAMPLE.read_text()
    assert sorted(SETTINGS - set(SETTING_NAME.findall(text))) == []
    values = env_file_values(text)
    assert set(values) <= SETTINGS
    # The example (placeholders included) is a configuration the gateway accepts.
    Settings(**{name.removeprefix("GATEWAY_").lower(): value for name, value in values.items()}, _env_file=None)  # type: ignore[call-arg]


def test_kubernetes_manifests() -> None:
    assert k8s_problems(k8s_objects()) == []


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)


def test_kubernetes_fleet_fits_postgres_connections() -> None:
    peak = k8s_peak_connections(k8s_objects())
    assert 0 < peak <= POSTGRES_DEFAULT_MAX_CONNECTIONS - CONNECTION_HEADROOM


def test_compose() -> None:
    assert compose_problems(compose_file()) == []


def test_compose_fits_postgres_connections() -> None:
    compose = compose_file()
    configured = re.search(r"max_connections=(\d+)", " ".join(compose_command(compose["services"]["postgres"])))
    max_connections = int(configured[1]) if configured else POSTGRES_DEFAULT_MAX_CONNECTIONS
    env = env_file_values(ENV_EXAMPLE.read_text())
    assert 0 < compose_peak_connections(compose, env) <= max_connections - CONNECTION_HEADROOM


def test_dockerfile() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_dockerignore_lets_the_build_inputs_through() -> None:
    assert dockerignore_problems(DOCKERFILE.read_text(), DOCKERIGNORE.read_text()) == []


def test_systemd_units() -> None:
    assert systemd_problems(systemd_units()) == []


# --- the checks catch what they claim to ------------------------------------------------------------


def test_a_renamed_setting_is_caught() -> None:
    text = ENV_EXAMPLE.read_text().replace("GATEWAY_DB_POOL_SIZE", "GATEWAY_DB_POOLSIZE")
    assert unknown_settings(text) == {"GATEWAY_DB_POOLSIZE"}
    assert "GATEWAY_DB_POOL_SIZE" not in SETTING_NAME.findall(text)
    assert unknown_settings("GATEWAY_PORT=1 GATEWAY_LOG_JSON=true") == set()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["serv"],
        ["serve", "--no-workers"],
        ["serve", "--workers", "0"],
        ["worker", "--port", "1"],
        ["simulate", "--hots", "x"],
        ["migrate", "--help"],
    ],
)
def test_a_wrong_command_is_caught(args: list[str]) -> None:
    assert gateway_command_problems(args) != []


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--host", "0.0.0.0", "--workers", "2", "--no-worker"],
        ["worker"],
        ["migrate"],
        ["demo"],
        ["sync"],
        ["simulate", "--host", "0.0.0.0", "--port", "8765"],
    ],
)
def test_a_right_command_passes(args: list[str]) -> None:
    assert gateway_command_problems(args) == []


def _api(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objects, "Deployment", "smm-gateway-api")[0]


def _api_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return pod_spec(_api(objects))["containers"][0]


def _set_env_from(objects: list[dict[str, Any]]) -> None:
    _api_container(objects)["envFrom"][0]["configMapRef"]["name"] = "smm-gateway-settings"


def _readiness_on_health(objects: list[dict[str, Any]]) -> None:
    _api_container(objects)["readinessProbe"]["httpGet"]["path"] = "/health"


def _probe_wrong_port(objects: list[dict[str, Any]]) -> None:
    _api_container(objects)["livenessProbe"]["httpGet"]["port"] = 9090


def _root(objects: list[dict[str, Any]]) -> None:
    pod_spec(_api(objects))["securityContext"]["runAsNonRoot"] = False


def _hpa_wrong_target(objects: list[dict[str, Any]]) -> None:
    find(objects, "HorizontalPodAutoscaler")[0]["spec"]["scaleTargetRef"]["name"] = "smm-gateway"


def _selector_mismatch(objects: list[dict[str, Any]]) -> None:
    _api(objects)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "web"


def _service_port(objects: list[dict[str, Any]]) -> None:
    find(objects, "Service")[0]["spec"]["ports"][0]["targetPort"] = "metrics"


def _secret_in_configmap(objects: list[dict[str, Any]]) -> None:
    find(objects, "ConfigMap")[0]["data"]["GATEWAY_ADMIN_TOKEN"] = "x"


def _bad_worker_command(objects: list[dict[str, Any]]) -> None:
    pod_spec(find(objects, "Deployment", "smm-gateway-worker")[0])["containers"][0]["args"] = ["worker", "--once"]


def _short_grace(objects: list[dict[str, Any]]) -> None:
    pod_spec(_api(objects))["terminationGracePeriodSeconds"] = 30


def _no_tmp(objects: list[dict[str, Any]]) -> None:
    pod_spec(find(objects, "Job")[0])["containers"][0]["volumeMounts"] = []


def _missing_kind(objects: list[dict[str, Any]]) -> None:
    objects.remove(find(objects, "Job")[0])


@pytest.mark.parametrize(
    "mutate",
    [
        _set_env_from,
        _readiness_on_health,
        _probe_wrong_port,
        _root,
        _hpa_wrong_target,
        _selector_mismatch,
        _service_port,
        _secret_in_configmap,
        _bad_worker_command,
        _short_grace,
        _no_tmp,
        _missing_kind,
    ],
)
def test_a_broken_manifest_is_caught(mutate: Callable[[list[dict[str, Any]]], None]) -> None:
    objects = copy.deepcopy(k8s_objects())
    mutate(objects)
    assert k8s_problems(objects) != []


def test_too_many_api_pods_for_postgres_are_caught() -> None:
    objects = copy.deepcopy(k8s_objects())
    find(objects, "HorizontalPodAutoscaler")[0]["spec"]["maxReplicas"] = 30
    assert k8s_peak_connections(objects) > POSTGRES_DEFAULT_MAX_CONNECTIONS - CONNECTION_HEADROOM


@pytest.mark.parametrize(
    ("service", "path", "value"),
    [
        ("api", ["depends_on", "migrate", "condition"], "service_started"),
        ("worker", ["depends_on", "migrate", "condition"], "service_healthy"),
        ("api", ["depends_on", "migrat"], {"condition": "service_completed_successfully"}),
        ("api", ["depends_on", "simulator"], {"condition": "service_started"}),
        ("migrate", ["restart"], "always"),
        ("worker", ["command"], ["work"]),
        ("api", ["command"], "serve --host 0.0.0.0 --worker 2"),
        ("simulator", ["profiles"], []),
        ("api", ["healthcheck", "test"], ["CMD", "true"]),
    ],
)
def test_a_broken_compose_file_is_caught(service: str, path: list[str], value: Any) -> None:
    compose = copy.deepcopy(compose_file())
    node = compose["services"][service]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert compose_problems(compose) != []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("USER 10001:10001", "USER root"),
        ("USER 10001:10001", ""),
        ("HEALTHCHECK", "# HEALTHCHECK"),
        ('ENTRYPOINT ["gateway"]', 'ENTRYPOINT ["gateway"]\nADD https://example.com/tool /usr/local/bin/tool'),
        ("EXPOSE 8080", "RUN apt-get install -y gcc\nEXPOSE 8080"),
        ('CMD ["serve", "--host", "0.0.0.0", "--no-worker"]', 'CMD ["migrate"]'),
        ('CMD ["serve", "--host", "0.0.0.0", "--no-worker"]', "CMD gateway serve"),
        ("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.11 AS runtime"),
    ],
)
def test_a_broken_dockerfile_is_caught(old: str, new: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    assert dockerfile_problems(text.replace(old, new)) != []


def test_a_build_input_left_out_of_the_context_is_caught() -> None:
    assert dockerignore_problems(DOCKERFILE.read_text(), DOCKERIGNORE.read_text().replace("!migrations/", "")) != []


@pytest.mark.parametrize(
    ("unit", "old", "new"),
    [
        ("smm-gateway-api.service", "gateway serve", "gateway serv"),
        ("smm-gateway-api.service", "NoNewPrivileges=yes", ""),
        ("smm-gateway-worker.service", "User=smm-gateway", "User=root"),
        ("smm-gateway-worker.service", "TimeoutStopSec=45", "TimeoutStopSec=10"),
        ("smm-gateway-migrate.service", "Type=oneshot", "Type=simple"),
        ("smm-gateway-migrate.service", "RequiredBy=smm-gateway-api.service", "RequiredBy=smm-gateway-app.service"),
        ("smm-gateway-migrate.service", "[Service]", "[Servic]"),
    ],
)
def test_a_broken_systemd_unit_is_caught(unit: str, old: str, new: str) -> None:
    units = systemd_units()
    assert old in units[unit]
    units[unit] = units[unit].replace(old, new)
    assert systemd_problems(units) != []
