"""The Docker deployment (deploy/docker-compose.yml, Dockerfile, .dockerignore), checked offline.

No Docker engine is needed: these tests read the files and check the structure that `docker compose
up` relies on, so that the stack cannot silently rot while nobody runs it — a renamed service, a
port that no longer matches ``DEFAULT_PORTS``, a healthcheck that was dropped, a volume that was
never declared, JetStream back on its default fsync interval, an image that re-resolves instead of
installing ``uv.lock``.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from tuanlian.shared.settings import DEFAULT_PORTS, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = sorted(DEFAULT_PORTS)
INFRA_SERVICES = ["nats", "postgres"]
ALL_SERVICES = INFRA_SERVICES + APP_SERVICES

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::?[-?](?P<default>[^}]*))?\}")


# ----------------------------------------------------------------------------------------------
# Reading the files
# ----------------------------------------------------------------------------------------------


def interpolate(value: Any) -> Any:
    """``${VAR:-default}`` → ``default``: what compose does when VAR is unset in the environment."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: m.group("default") or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), "no services: mapping"
    return interpolate(doc)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_words(command: Any) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host, container) port pairs, from short ("[ip:]host:container[/proto]") or long syntax."""
    pairs = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            pairs.append((int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) < 2:
            continue  # "8101" alone publishes on a random host port: not what we want
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) pairs, from short ("src:target[:mode]") or long syntax."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            mounts.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            parts = str(entry).split(":")
            mounts.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return mounts


def is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "$"))


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def healthcheck_text(service: dict[str, Any]) -> str:
    return " ".join(command_words((service.get("healthcheck") or {}).get("test")))


def nats_conf_directives(text: str) -> str:
    """The configuration with comments removed, so that a commented-out line does not count."""
    return "\n".join(
        re.split(r"\s(?:#|//)|^(?:#|//)", line, maxsplit=1)[0] for line in text.splitlines()
    )


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    logical, current = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        logical.append(current)
        current = ""
    out = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def dockerfile_args() -> dict[str, str]:
    args = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
    return args


def exec_form(rest: str) -> list[str]:
    if rest.startswith("["):
        return [str(w) for w in yaml.safe_load(rest)]
    return shlex.split(rest)


# ----------------------------------------------------------------------------------------------
# The compose file
# ----------------------------------------------------------------------------------------------


def test_the_six_services_exist(services: dict[str, Any]) -> None:
    missing = sorted(set(ALL_SERVICES) - set(services))
    assert not missing, f"deploy/docker-compose.yml lacks services {missing}"


def test_app_services_are_exactly_the_default_ports_services() -> None:
    assert APP_SERVICES == ["contacts", "notify", "scoring", "wishes"]


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_every_service_has_a_healthcheck(services: dict[str, Any], name: str) -> None:
    check = services[name].get("healthcheck") or {}
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    test = command_words(check.get("test"))
    assert test and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, (
        f"{name}: healthcheck.test must be a CMD or CMD-SHELL command, got {test!r}"
    )
    assert check.get("interval"), f"{name}: healthcheck.interval is not set"


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_every_service_restarts(services: dict[str, Any], name: str) -> None:
    assert services[name].get("restart") == "unless-stopped", f"{name}: restart: unless-stopped"


def test_nats_runs_a_pinned_image_with_its_mounted_config(services: dict[str, Any]) -> None:
    nats = services["nats"]
    assert re.fullmatch(r"nats:2\.1\d(\.\d+)*-alpine[\d.]*", nats.get("image", "")), (
        f"nats image must be a pinned 2.1x alpine tag (it has wget), got {nats.get('image')!r}"
    )
    conf = [(src, dst) for src, dst in volume_mounts(nats) if src.endswith(".conf")]
    assert len(conf) == 1, f"nats: expected one mounted .conf file, got {volume_mounts(nats)}"
    source, target = conf[0]
    assert (COMPOSE_FILE.parent / source).is_file(), f"nats config {source} does not exist"
    words = command_words(nats.get("command"))
    assert any(flag in words for flag in ("--config", "-c")) and target in words, (
        f"nats: command must load the mounted config {target}, got {words}"
    )


@pytest.fixture(scope="module")
def nats_conf(services: dict[str, Any]) -> str:
    source = next(src for src, _ in volume_mounts(services["nats"]) if src.endswith(".conf"))
    return (COMPOSE_FILE.parent / source).read_text(encoding="utf-8")


def test_nats_config_enables_jetstream_on_file_storage(nats_conf: str) -> None:
    directives = nats_conf_directives(nats_conf)
    assert re.search(r"^\s*jetstream\s*[:=]?\s*\{", directives, re.M), "no jetstream { } block"
    assert re.search(r"^\s*store_dir\s*[:=]", directives, re.M), "jetstream: no store_dir"
    assert re.search(r"^\s*http_port\s*[:=]\s*8222\b", directives, re.M), "monitoring port 8222"


def test_nats_fsyncs_every_write(nats_conf: str) -> None:
    """JetStream's default 2-minute fsync interval can lose acknowledged writes on power failure
    (Jepsen, NATS 2.12.1); the outbox relay moves past a message once it is acked, so an acked
    message that is lost would never be re-published. See deploy/README.md before changing it."""
    directives = nats_conf_directives(nats_conf)
    match = re.search(r"^\s*(?:sync_interval|sync)\s*[:=]\s*\"?(\w+)\"?", directives, re.M)
    assert match, "jetstream: sync_interval is not set (the default, 2m, can lose acked writes)"
    assert match.group(1) == "always", f"jetstream: sync_interval is {match.group(1)!r}, not always"


def test_nats_store_dir_is_on_a_named_volume(services: dict[str, Any], nats_conf: str) -> None:
    match = re.search(
        r"^\s*store_dir\s*[:=]\s*\"?([^\"\s]+)", nats_conf_directives(nats_conf), re.M
    )
    assert match
    store_dir = PurePosixPath(match.group(1))
    assert any(
        is_named_volume(src)
        and (store_dir == PurePosixPath(dst) or PurePosixPath(dst) in store_dir.parents)
        for src, dst in volume_mounts(services["nats"])
    ), (
        f"nats: JetStream's store_dir {store_dir} is not on a named volume: streams would die "
        "with the container"
    )


def test_nats_healthcheck_requires_jetstream(services: dict[str, Any]) -> None:
    test = healthcheck_text(services["nats"])
    assert ":8222/healthz" in test and "js-enabled-only=true" in test, test


def test_postgres_runs_a_pinned_image(services: dict[str, Any]) -> None:
    image = services["postgres"].get("image", "")
    assert re.fullmatch(r"postgres:1[7-9](\.\d+)*(-alpine[\d.]*)?", image), (
        f"postgres image must be pinned to a major version >= 17, got {image!r}"
    )


def test_postgres_keeps_its_data_and_reports_readiness(services: dict[str, Any]) -> None:
    pg = services["postgres"]
    assert any(
        is_named_volume(s) and t.startswith("/var/lib/postgresql") for s, t in volume_mounts(pg)
    ), "postgres: data directory is not on a named volume"
    assert environment(pg).get("POSTGRES_DB") == "tuanlian"
    assert "pg_isready" in healthcheck_text(pg)


def test_postgres_is_initialised_to_compare_text_by_code_point(services: dict[str, Any]) -> None:
    # As the embedded cluster is (infra.EmbeddedPostgres): every projection key is text.
    args = environment(services["postgres"]).get("POSTGRES_INITDB_ARGS", "").split()
    assert "--locale-provider=builtin" in args and "--builtin-locale=C.UTF-8" in args, args


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_builds_the_repo_dockerfile(services: dict[str, Any], name: str) -> None:
    build = services[name].get("build")
    assert build, f"{name}: no build:"
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    context_dir = (COMPOSE_FILE.parent / context).resolve()
    assert (context_dir / dockerfile).is_file(), (
        f"{name}: {context_dir / dockerfile} does not exist"
    )
    assert (context_dir / dockerfile).resolve() == DOCKERFILE.resolve(), (
        f"{name}: not the root Dockerfile"
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_command_serves_itself(services: dict[str, Any], name: str) -> None:
    assert command_words(services[name].get("command")) == ["tuanlian", "serve", name]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_publishes_its_default_port(services: dict[str, Any], name: str) -> None:
    port = DEFAULT_PORTS[name]
    assert (port, port) in published_ports(services[name]), (
        f"{name}: must publish {port}:{port}, got {services[name].get('ports')}"
    )
    env = environment(services[name])
    assert int(env.get(f"TUANLIAN_{name.upper()}_PORT", port)) == port, f"{name}: port overridden"
    assert env.get("TUANLIAN_HOST") == "0.0.0.0", (
        f"{name}: must listen on 0.0.0.0 inside the container"
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_healthcheck_gets_healthz_on_its_port(
    services: dict[str, Any], name: str
) -> None:
    test = healthcheck_text(services[name])
    assert f":{DEFAULT_PORTS[name]}/healthz" in test, f"{name}: healthcheck is {test!r}"
    assert "urllib" in test, f"{name}: the slim image has no curl; use python's urllib"


def test_no_two_services_publish_the_same_host_port(services: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name, service in services.items():
        for host, _ in published_ports(service):
            assert host not in seen, f"{name} and {seen[host]} both publish host port {host}"
            seen[host] = name


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_points_at_the_compose_postgres(services: dict[str, Any], name: str) -> None:
    url = environment(services[name]).get("TUANLIAN_DATABASE_URL", "")
    parts = urlsplit(url)
    pg_env = environment(services["postgres"])
    assert parts.scheme in {"postgresql", "postgres"}, f"{name}: TUANLIAN_DATABASE_URL={url!r}"
    assert parts.hostname == "postgres" and (parts.port or 5432) == 5432, f"{name}: {url!r}"
    assert parts.path.lstrip("/") == pg_env.get("POSTGRES_DB"), f"{name}: database name differs"
    assert parts.username == pg_env.get("POSTGRES_USER", "postgres"), f"{name}: user differs"
    assert parts.password == pg_env.get("POSTGRES_PASSWORD"), f"{name}: password differs"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_points_at_the_compose_nats(services: dict[str, Any], name: str) -> None:
    url = environment(services[name]).get("TUANLIAN_NATS_URL", "")
    parts = urlsplit(url)
    assert parts.scheme == "nats" and parts.hostname == "nats" and (parts.port or 4222) == 4222, (
        f"{name}: TUANLIAN_NATS_URL={url!r}"
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_waits_for_healthy_infrastructure(services: dict[str, Any], name: str) -> None:
    deps = depends_on(services[name])
    for infra in INFRA_SERVICES:
        assert deps.get(infra) == "service_healthy", f"{name}: depends_on {infra}: service_healthy"


@pytest.mark.parametrize("name", [s for s in APP_SERVICES if s != "contacts"])
def test_other_services_get_token_keys_from_contacts(services: dict[str, Any], name: str) -> None:
    """contacts owns the signing key; the others verify tokens with its JWKS."""
    assert depends_on(services[name]).get("contacts") == "service_healthy"
    url = urlsplit(environment(services[name]).get("TUANLIAN_CONTACTS_URL", ""))
    assert (url.hostname, url.port) == ("contacts", DEFAULT_PORTS["contacts"]), (
        f"{name}: TUANLIAN_CONTACTS_URL must point at http://contacts:{DEFAULT_PORTS['contacts']}"
    )


def test_contacts_keeps_its_signing_key_on_a_volume(services: dict[str, Any]) -> None:
    env = environment(services["contacts"])
    keys_dir = Settings(home=Path(env.get("TUANLIAN_HOME", ".tuanlian"))).keys_dir.as_posix()
    assert any(
        is_named_volume(s) and t == keys_dir for s, t in volume_mounts(services["contacts"])
    ), f"contacts: {keys_dir} is not on a named volume: a restart would invalidate every token"


def test_depends_on_targets_exist_and_have_healthchecks(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), (
                    f"{name} waits for {dep}, which never becomes healthy"
                )


def test_every_named_volume_is_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = {
        source
        for service in compose["services"].values()
        for source, _ in volume_mounts(service)
        if is_named_volume(source)
    }
    assert used <= declared, f"volumes used but not declared: {sorted(used - declared)}"
    assert declared <= used, f"volumes declared but never used: {sorted(declared - used)}"


# ----------------------------------------------------------------------------------------------
# The Dockerfile and its build context
# ----------------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    args = dockerfile_args()
    froms = [rest.split()[0] for kw, rest in dockerfile_instructions() if kw == "FROM"]
    images = [
        _VARIABLE.sub(lambda m: args.get(m.group("name"), ""), re.sub(r"\$(\w+)", r"${\1}", f))
        for f in froms
    ]
    assert len(images) >= 2, f"expected a multi-stage build, got FROM {froms}"
    assert all(image.startswith("python:3.11-slim") for image in images), images


def test_dockerfile_installs_uv_from_pypi_and_the_locked_dependencies() -> None:
    instructions = dockerfile_instructions()
    runs = [rest for kw, rest in instructions if kw == "RUN"]
    assert any(re.search(r"\bpip install\b.*\buv\b", r) for r in runs), (
        "uv is not installed with pip"
    )
    copies = [exec_form(rest) for kw, rest in instructions if kw == "COPY" and "--from" not in rest]
    assert any("uv.lock" in words[:-1] for words in copies), "the Dockerfile does not COPY uv.lock"
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs, "no `uv sync` in the Dockerfile"
    for run in syncs:
        assert "--frozen" in run, f"`uv sync` without --frozen would re-resolve: {run}"
        assert "--no-dev" in run, f"`uv sync` without --no-dev ships the test tools: {run}"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [rest.split(":")[0] for kw, rest in dockerfile_instructions() if kw == "USER"]
    assert users and users[-1] not in {"root", "0"}, f"the image runs as root (USER {users})"


def test_dockerfile_command_serves_a_service() -> None:
    cmds = [exec_form(rest) for kw, rest in dockerfile_instructions() if kw == "CMD"]
    assert cmds and cmds[-1][:2] == ["tuanlian", "serve"], f"CMD is {cmds[-1] if cmds else None}"
    assert cmds[-1][2] in DEFAULT_PORTS


def test_dockerfile_healthcheck_gets_healthz() -> None:
    checks = [rest for kw, rest in dockerfile_instructions() if kw == "HEALTHCHECK"]
    assert checks and "NONE" not in checks[-1].split(), "the image has no HEALTHCHECK"
    script = ROOT / "deploy" / "healthcheck.py"
    assert script.name in checks[-1], checks[-1]
    text = script.read_text(encoding="utf-8")
    assert "/healthz" in text and "urllib" in text


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Roughly Docker's rule: the last matching pattern wins; a pattern excluding a directory
    excludes what is under it; ``**/`` also matches zero directories."""
    candidates = [
        str(PurePosixPath(*PurePosixPath(path).parts[: i + 1]))
        for i in range(len(PurePosixPath(path).parts))
    ]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        variants = {pattern.rstrip("/"), pattern.rstrip("/").removeprefix("**/")}
        if any(fnmatch.fnmatchcase(c, v) for c in candidates for v in variants):
            excluded = not negate
    return excluded


def test_dockerfile_copies_only_what_the_build_context_has() -> None:
    patterns = [
        line.strip()
        for line in (
            DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if DOCKERIGNORE.exists() else []
        )
        if line.strip() and not line.strip().startswith("#")
    ]
    copies = [
        exec_form(rest)
        for kw, rest in dockerfile_instructions()
        if kw == "COPY" and "--from" not in rest
    ]
    sources = [src for words in copies for src in words[:-1] if not src.startswith("--")]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
        assert not _dockerignored(src, patterns), f"COPY {src}: excluded by .dockerignore"
    for must_stay_out in (".venv", ".git", ".tuanlian/pg/PG_VERSION", "x/keys/signing.pem"):
        assert _dockerignored(must_stay_out, patterns), (
            f"{must_stay_out} is sent to the Docker daemon"
        )
