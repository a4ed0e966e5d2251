"""Checks what the schemas cannot: that the Dockerfile, the rendered Kubernetes
manifests, the compose stack and the application's config agree with each other
and with what docs/operations.md promises (probe paths, secret names, mount
paths, grace periods, selectors, and an Ingress's backend, timeouts and
client addresses). Called by scripts/lint-deploy, which renders
the manifests first; run from the repository root.

Usage: lint_policy.py dockerfile
       lint_policy.py manifests RENDERED.yaml [--generated-secret]
       lint_policy.py compose deploy/compose.yaml
"""

import ipaddress
import re
import shlex
import sys
from pathlib import Path

import yaml

SECRET = "roomcast"
SECRET_KEYS = {"mongo-uri", "jwt-public-key.pem"}
JWT_DIR = "/etc/roomcast/jwt"
JWT_FILE = f"{JWT_DIR}/jwt-public-key.pem"
PRODUCTION_CONFIG = Path("config/production.yaml")
DEFAULT_SHUTDOWN_GRACE = 10.0

failures = []


def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)
    return ok


def seconds(text):
    """A roomcast duration (`500ms`, `10s`, `2m`, `1h`) in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text).strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def server_setting(key, env=None):
    """server.KEY as the production config resolves it, with the container's
    environment (ROOMCAST__SERVER__KEY) over both files."""
    value = None
    for path in (Path("config/base.yaml"), PRODUCTION_CONFIG):
        server = (yaml.safe_load(path.read_text()) or {}).get("server") or {}
        value = server.get(key, value)
    variable = (env or {}).get(f"ROOMCAST__SERVER__{key.upper()}", {})
    return variable.get("value", value)


def shutdown_grace():
    """server.shutdown_grace as the production config resolves it."""
    grace = server_setting("shutdown_grace")
    return DEFAULT_SHUTDOWN_GRACE if grace is None else seconds(grace)


def dockerfile_facts():
    """The runtime stage's user, port, workdir and env, from the Dockerfile."""
    lines = []
    for raw in Path("Dockerfile").read_text().replace("\\\n", " ").splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            lines.append(raw.strip())
    stages = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    runtime = lines[stages[-1]:] if stages else []
    facts = {"lines": lines, "stages": stages, "runtime": runtime}
    for line in runtime:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "USER":
            facts["user"] = rest.split(":")[0]
        elif word == "EXPOSE":
            facts["port"] = int(rest.split("/")[0])
        elif word == "WORKDIR":
            facts["workdir"] = rest
        elif word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                facts.setdefault("env", {})[key] = value
    return facts


def lint_dockerfile():
    print("Dockerfile: what the docs and the manifests rely on")
    facts = dockerfile_facts()
    lines, runtime = facts["lines"], facts["runtime"]
    check(len(facts["stages"]) >= 2, "multi-stage build")
    check(any("cargo chef cook" in line for line in lines), "dependencies are compiled in their own layer (cargo chef cook)")
    stage_names = set()
    for index in facts["stages"]:
        words = lines[index].split()
        image = words[1]
        if len(words) >= 4 and words[2].upper() == "AS":
            stage_names.add(words[3])
        if image in stage_names:
            continue
        check(
            re.search(r":[^:@]*\d", image) is not None and ":latest" not in image,
            f"base image pinned to a versioned tag: {image}",
        )
    user = facts.get("user", "")
    check(user.isdigit() and int(user) != 0, f"runtime runs as a numeric non-root user (USER {user or 'missing'})")
    check(facts.get("port") == 8080, "runtime EXPOSEs 8080")
    check(facts.get("env", {}).get("ROOMCAST_ENV") == "production", "runtime sets ROOMCAST_ENV=production")
    copies = [line for line in runtime if line.upper().startswith(("COPY", "ADD"))]
    check(
        len(copies) == 2
        and any("target/release/roomcast" in line for line in copies)
        and any(line.split()[-2] == "config" for line in copies),
        "runtime holds only the binary and config/",
    )
    check(
        not any(line.upper().startswith("RUN") and "apt-get install" in line for line in runtime),
        "runtime installs no packages",
    )
    ignore = [
        line.strip().rstrip("/")
        for line in Path(".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = ["Cargo.toml", "Cargo.lock", "src", "config"]
    check(
        all((f"!{name}" in ignore) if "*" in ignore else (name not in ignore) for name in needed),
        f".dockerignore lets {', '.join(needed)} into the build context",
    )


def documents(path):
    return [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]


def one(docs, kind, name_prefix="roomcast"):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    check(len(found) == 1, f"exactly one {kind} {name_prefix}")
    return found[0] if found else {}


def selects(selector, labels):
    wanted = (selector or {}).get("matchLabels", selector or {})
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def lint_manifests(path, generated_secret):
    print(f"{Path(path).name}: probes, security, secrets, config and grace period")
    docs = documents(path)
    facts = dockerfile_facts()
    deployment = one(docs, "Deployment")
    spec = deployment.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    containers = pod.get("containers", [])
    check(len(containers) == 1, "one container")
    container = containers[0] if containers else {}

    check(spec.get("replicas", 1) >= 2, f"at least 2 replicas (replicas: {spec.get('replicas')})")
    check(selects(spec.get("selector"), labels), "Deployment selector matches its pod labels")

    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    check(facts.get("port") in ports.values(), f"container port matches the image's EXPOSE {facts.get('port')}")

    def probe_target(probe):
        get = (container.get(probe) or {}).get("httpGet", {})
        port = get.get("port")
        return get.get("path"), ports.get(port, port)

    check(probe_target("readinessProbe") == ("/readyz", 8080), "readiness probe: GET /readyz on 8080")
    check(probe_target("livenessProbe") == ("/healthz", 8080), "liveness probe: GET /healthz on 8080")
    if "startupProbe" in container:
        check(probe_target("startupProbe")[0] == "/healthz", "startup probe uses /healthz, which ignores MongoDB")

    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        check({"cpu", "memory"} <= set(resources.get(part, {})), f"resources.{part} set for cpu and memory")

    pod_security = pod.get("securityContext", {})
    security = container.get("securityContext", {})
    check(
        security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True,
        "runAsNonRoot",
    )
    run_as = security.get("runAsUser", pod_security.get("runAsUser"))
    check(str(run_as) == facts.get("user"), f"runAsUser {run_as} is the image's USER {facts.get('user')}")
    check(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    check(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    check("ALL" in security.get("capabilities", {}).get("drop", []), "all capabilities dropped")

    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    command = pre_stop.get("exec", {}).get("command", [])
    pause = None
    if len(command) == 2 and command[0] == "sleep":
        pause = float(command[1])
    elif "sleep" in pre_stop:
        pause = float(pre_stop["sleep"]["seconds"])
    check(pause is not None and pause > 0, f"preStop pause before SIGTERM ({pause} s)")
    grace = shutdown_grace()
    period = pod.get("terminationGracePeriodSeconds", 30)
    check(
        pause is not None and period > pause + grace,
        f"terminationGracePeriodSeconds {period} > preStop {pause} s + server.shutdown_grace {grace:g} s",
    )

    env = {e["name"]: e for e in container.get("env", [])}
    mongo_ref = env.get("ROOMCAST__MONGO__URI", {}).get("valueFrom", {}).get("secretKeyRef", {})
    secret_name = mongo_ref.get("name", "")
    check(
        re.fullmatch(rf"{SECRET}(-[a-z0-9]{{10}})?", secret_name) is not None and mongo_ref.get("key") == "mongo-uri",
        f"ROOMCAST__MONGO__URI from Secret {SECRET}, key mongo-uri (got {secret_name}/{mongo_ref.get('key')})",
    )
    check(
        env.get("ROOMCAST__AUTH__JWT__KEY_FILE", {}).get("value") == JWT_FILE,
        f"ROOMCAST__AUTH__JWT__KEY_FILE={JWT_FILE}",
    )
    check("value" not in env.get("ROOMCAST__MONGO__URI", {}), "no MongoDB URI in plain text")

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    jwt_mount = mounts.get(JWT_DIR, {})
    jwt_volume = volumes.get(jwt_mount.get("name"), {}).get("secret", {})
    check(
        jwt_volume.get("secretName") == secret_name
        and "jwt-public-key.pem" in [i["key"] for i in jwt_volume.get("items", [{"key": "jwt-public-key.pem"}])]
        and jwt_mount.get("readOnly") is True,
        f"Secret key jwt-public-key.pem mounted read-only at {JWT_DIR}, from the same Secret",
    )

    config_path = f"{facts.get('workdir', '/app')}/config/production.yaml"
    config_mount = mounts.get(config_path, {})
    config_volume = volumes.get(config_mount.get("name"), {}).get("configMap", {})
    check(
        config_mount.get("subPath") == "production.yaml" and config_mount.get("readOnly") is True,
        f"ConfigMap key production.yaml mounted alone at {config_path} (base.yaml stays the image's)",
    )
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    config_map = config_maps.get(config_volume.get("name"), {})
    check(
        config_map.get("data", {}).get("production.yaml") == PRODUCTION_CONFIG.read_text(),
        f"ConfigMap {config_volume.get('name')} holds config/production.yaml unchanged",
    )

    secrets = [d for d in docs if d["kind"] == "Secret"]
    if generated_secret:
        generated = [d for d in secrets if d["metadata"]["name"] == secret_name]
        check(
            len(generated) == 1 and set(generated[0].get("data", {})) == SECRET_KEYS,
            f"the example secretGenerator makes {secret_name} with keys {sorted(SECRET_KEYS)}, and the pods use it",
        )
    else:
        check(not secrets, "no Secret object: the manifests only reference Secret roomcast")

    service = one(docs, "Service")
    check(selects(service.get("spec", {}).get("selector"), labels), "Service selects the pods")
    check(
        all(ports.get(p.get("targetPort"), p.get("targetPort")) == 8080 for p in service.get("spec", {}).get("ports", [])),
        "Service targets port 8080",
    )
    check(service.get("spec", {}).get("sessionAffinity", "None") == "None", "Service has no session affinity")

    budget = one(docs, "PodDisruptionBudget")
    check(selects(budget.get("spec", {}).get("selector"), labels), "PodDisruptionBudget selects the pods")

    lint_ingress(docs, service, env)

    autoscaler = one(docs, "HorizontalPodAutoscaler")
    target = autoscaler.get("spec", {}).get("scaleTargetRef", {})
    check(
        target.get("kind") == "Deployment" and target.get("name") == deployment.get("metadata", {}).get("name"),
        "HorizontalPodAutoscaler scales the Deployment",
    )
    low, high = autoscaler.get("spec", {}).get("minReplicas", 1), autoscaler.get("spec", {}).get("maxReplicas", 0)
    check(low >= 2 and high >= low, f"HorizontalPodAutoscaler keeps 2 or more replicas ({low}..{high})")


def lint_ingress(docs, service, env):
    """An Ingress, where a render has one: it reaches the Service's port for
    /ws only, keeps sockets open between pings, and roomcast is told which
    peers are proxies and which header they append the client to."""
    ingresses = [d for d in docs if d["kind"] == "Ingress"]
    if not ingresses:
        print("  --   no Ingress in this render")
        return
    ingress = one(docs, "Ingress")
    service_name = service.get("metadata", {}).get("name")
    service_ports = {p.get("name"): p.get("port") for p in service.get("spec", {}).get("ports", [])}
    paths = [
        path
        for rule in ingress.get("spec", {}).get("rules", [])
        for path in (rule.get("http") or {}).get("paths", [])
    ]
    backends = [path.get("backend", {}).get("service", {}) for path in paths]
    check(
        bool(backends)
        and all(
            b.get("name") == service_name
            and (b.get("port", {}).get("name") in service_ports or b.get("port", {}).get("number") in service_ports.values())
            for b in backends
        ),
        f"Ingress routes to a port of Service {service_name}",
    )

    def exposes(route, path):
        if path.get("pathType") == "Exact":
            return path.get("path") == route
        prefix = path.get("path", "/").rstrip("/")
        return route == prefix or route.startswith(prefix + "/")

    check(any(exposes("/ws", path) for path in paths), "Ingress routes /ws")

    private = [route for route in ("/metrics", "/healthz", "/readyz") if any(exposes(route, p) for p in paths)]
    check(not private, f"Ingress keeps /metrics, /healthz and /readyz inside the cluster (exposed: {private})")

    ping = seconds(server_setting("ping_interval", env) or "20s")
    annotations = ingress.get("metadata", {}).get("annotations", {})
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        value = annotations.get(f"nginx.ingress.kubernetes.io/{name}")
        check(
            value is not None and float(value) >= max(60, 2 * ping),
            f"Ingress {name} ({value} s) outlasts two pings (server.ping_interval {ping:g} s) and 60 s",
        )

    header = server_setting("client_ip_header", env)
    check(header == "x-forwarded-for", f"roomcast reads the client from X-Forwarded-For behind the Ingress ({header})")
    trusted = server_setting("trusted_proxies", env) or []
    if isinstance(trusted, str):
        trusted = [entry for entry in trusted.split(",") if entry.strip()]
    try:
        networks = [ipaddress.ip_network(entry.strip(), strict=False) for entry in trusted]
    except ValueError as error:
        networks = []
        check(False, f"server.trusted_proxies: {error}")
    check(bool(networks), f"server.trusted_proxies names the ingress controller's networks ({', '.join(map(str, networks))})")


def lint_compose(path):
    print(f"{path}: services, dependencies, replica set and build context")
    compose = yaml.safe_load(Path(path).read_text())
    services = compose.get("services", {})
    for name, service in services.items():
        for dependency in service.get("depends_on", {}) or {}:
            check(dependency in services, f"{name} depends on an existing service ({dependency})")
    mongo = services.get("mongo", {})
    image = mongo.get("image", "")
    check(re.fullmatch(r"mongo:\d+\.\d+(\.\d+)?", image) is not None, f"mongo uses the official image, pinned ({image})")
    command = mongo.get("command", [])
    command = shlex.split(command) if isinstance(command, str) else command
    replica_set = command[command.index("--replSet") + 1] if "--replSet" in command else None
    check(replica_set is not None, f"mongo runs as a replica set ({replica_set})")
    check(
        any(
            "rs.initiate" in str(s.get("command", "")) and "mongo" in (s.get("depends_on") or {})
            for s in services.values()
        ),
        "a one-shot service initiates the replica set after mongo is up",
    )
    relay = services.get("roomcast", {})
    uri = str(relay.get("environment", {}).get("ROOMCAST__MONGO__URI", ""))
    check(f"replicaSet={replica_set}" in uri, f"roomcast connects to the replica set ({uri})")
    context = Path(path).parent / relay.get("build", {}).get("context", ".")
    check((context / "Dockerfile").is_file(), f"roomcast builds from the repository's Dockerfile ({context})")
    check(
        any("notifications" in str(s.get("command", "")) and "insert" in str(s.get("command", "")) for s in services.values()),
        "a notification producer inserts into notifications",
    )


def main(argv):
    if argv[:1] == ["dockerfile"]:
        lint_dockerfile()
    elif argv[:1] == ["manifests"] and len(argv) >= 2:
        lint_manifests(argv[1], "--generated-secret" in argv[2:])
    elif argv[:1] == ["compose"] and len(argv) == 2:
        lint_compose(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
