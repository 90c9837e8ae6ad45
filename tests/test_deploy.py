"""Deploy artifacts, checked offline: no Docker engine or Kubernetes runs here.

- drift: the functions, their triggers and their settings agree across ``functions/``,
  ``stack.yml``, ``infra/knative/``, the connector's queues and ``vid2mp3.triggers``;
- every setting ``vid2mp3/config.py`` (and the S3 adapter) reads is documented and present on
  both platforms, secrets only as ``<KEY>_FILE`` pointing at a mounted secret;
- core Kubernetes objects pass ``kubernetes-validate --strict``; Knative, eventing-rabbitmq and
  RabbitMQ-operator objects and ``stack.yml`` pass the JSON Schemas in ``infra/schemas/``;
- the Dockerfile passes hadolint (threshold ``warning``) and the container entry serves its
  health endpoints; the deploy scripts' ``--dry-run`` lists the expected commands in order.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from werkzeug.test import Client

from tests.fixtures.net import free_port, stop, wait_until_up
from vid2mp3 import __version__, triggers
from vid2mp3.config import Config
from vid2mp3.events import EVENT_TYPES
from vid2mp3.runtime import functions
from vid2mp3.runtime.container import ConfigReadiness, create_app
from vid2mp3.runtime.health import HealthEndpoints

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
K8S_VERSION = "1.30.0"
MANIFESTS = sorted(
    [
        *(INFRA / "k8s").glob("*.yaml"),
        *(INFRA / "knative").rglob("*.yaml"),
        INFRA / "openfaas" / "dispatcher.yaml",
        INFRA / "openfaas" / "relay.yaml",
    ]
)
KNATIVE_SECRETS_DIR = "/var/run/secrets/vid2mp3"
OPENFAAS_SECRETS_DIR = "/var/openfaas/secrets"
DEFAULT_REGISTRY = "ghcr.io/vid2mp3"

#: Settings one platform deliberately does not set, and why.
NOT_SET = {
    ("openfaas", "K_SINK"): "Knative's SinkBinding injects it; OpenFaaS functions use EVENTS_URL",
    ("knative", "EVENTS_URL"): "K_SINK, injected by the SinkBinding, is read first",
    ("knative", "AWS_SESSION_TOKEN"): "temporary AWS credentials only; MinIO keys have none",
    ("openfaas", "AWS_SESSION_TOKEN"): "temporary AWS credentials only; MinIO keys have none",
}
#: Without these a function would silently fall back to an embedded default (a SQLite file, a
#: folder, the in-process bus), or refuse to start: every function gets them.
EVERY_FUNCTION = {
    "knative": {"VID2MP3_HOME", "JWT_SECRET", "DATABASE_URL", "STORAGE_URL", "K_SINK"},
    "openfaas": {"VID2MP3_HOME", "JWT_SECRET", "DATABASE_URL", "STORAGE_URL", "EVENTS_URL"},
}


# -- loading ---------------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def manifest_objects() -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple(
        (str(path.relative_to(ROOT)), doc) for path in MANIFESTS for doc in load_docs(path)
    )


def objects(kind: str, api_group: str = "") -> list[dict[str, Any]]:
    return [
        doc
        for _, doc in manifest_objects()
        if doc["kind"] == kind and doc["apiVersion"].startswith(api_group)
    ]


@cache
def stack() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "stack.yml").read_text())


def knative_services() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in objects("Service", "serving.knative.dev/")}


def config_map() -> dict[str, str]:
    (doc,) = [d for d in objects("ConfigMap") if d["metadata"]["name"] == "vid2mp3-config"]
    return doc["data"]


def openfaas_shared_env() -> dict[str, str]:
    return yaml.safe_load((INFRA / "openfaas" / "env.yml").read_text())["environment"]


def expand_defaults(text: str) -> str:
    """faas-cli's envsubst with nothing set: ``${NAME:-default}`` → ``default``."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def knative_env(name: str) -> dict[str, str]:
    """What function ``name``'s container sees on Knative (``K_SINK`` when a binding selects it)."""
    service = knative_services()[name]
    (container,) = service["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "vid2mp3-config"
        env.update(config_map())
    env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
    for binding in objects("SinkBinding"):
        subject = binding["spec"]["subject"]
        if subject["kind"] != "Service":
            continue  # the relay's binding, for its Deployment
        wanted = subject["selector"]["matchLabels"]
        labels = service["metadata"]["labels"]
        if wanted.items() <= labels.items():
            env["K_SINK"] = "(the broker, from the SinkBinding)"
    return env


def openfaas_env(name: str) -> dict[str, str]:
    function = stack()["functions"][name]
    env: dict[str, str] = {}
    for path in function.get("environment_file", []):
        env.update(yaml.safe_load((ROOT / path).read_text())["environment"])
    env.update(function.get("environment", {}))
    return env


def platform_env(platform: str, name: str) -> dict[str, str]:
    return knative_env(name) if platform == "knative" else openfaas_env(name)


class EnvKeys(ast.NodeVisitor):
    """The environment keys a module reads: ``env.get("K")`` and ``helper(env, "K")`` calls."""

    def __init__(self, secret_helpers: set[str], plain_helpers: set[str]) -> None:
        self.secret_helpers, self.plain_helpers = secret_helpers, plain_helpers
        self.plain: set[str] = set()
        self.secret: set[str] = set()

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get":
            is_env = isinstance(func.value, ast.Name) and func.value.id == "env"
            first = node.args[0] if node.args else None
            if is_env and isinstance(first, ast.Constant) and isinstance(first.value, str):
                self.plain.add(first.value)
        elif isinstance(func, ast.Name) and len(node.args) >= 2:
            # helper(env, "KEY", ...): the key is the second argument
            second = node.args[1]
            if isinstance(second, ast.Constant) and isinstance(second.value, str):
                if func.id in self.secret_helpers:
                    self.secret.add(second.value)
                elif func.id in self.plain_helpers:
                    self.plain.add(second.value)
        self.generic_visit(node)


@cache
def settings() -> tuple[frozenset[str], frozenset[str]]:
    """(plain keys, secret keys) read by vid2mp3/config.py and the S3 adapter."""
    plain: set[str] = set()
    secret: set[str] = set()
    for module, secret_helpers in (
        ("config.py", {"read_secret"}),
        ("storage/s3.py", {"read_secret"}),
    ):
        visitor = EnvKeys(secret_helpers, {"_int", "_float", "_flag"})
        visitor.visit(ast.parse((ROOT / "vid2mp3" / module).read_text()))
        plain |= visitor.plain
        secret |= visitor.secret
    # The secret helpers read KEY_FILE through an f-string, which is not a key of its own.
    return frozenset(plain - secret), frozenset(secret)


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed (it is in the test extra)"
    return found


def script_commands(script: str, *args: str, secrets: Path) -> list[list[str]]:
    result = subprocess.run(
        ["bash", str(INFRA / script), "--dry-run", "--secrets", str(secrets), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("+ ") for line in lines), result.stdout
    return [shlex.split(line[2:]) for line in lines]


def index_of(commands: list[list[str]], *words: str, after: int = -1) -> int:
    """The first command after ``after`` containing every word in ``words``."""
    for i, command in enumerate(commands):
        if i > after and all(w in command for w in words):
            return i
    raise AssertionError(f"no command with {words} after #{after}: {commands}")


def duration_seconds(text: str) -> float:
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    assert match and text, f"not a Go duration: {text!r}"
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    for name in [
        "jwt-secret",
        "database-url",
        "storage-url",
        "events-url",
        "aws-access-key-id",
        "aws-secret-access-key",
        "smtp-url",
        "openai-api-key",
        "mysql-root-password",
        "mysql-password",
        "mongodb-root-password",
    ]:
        (folder / name).write_text("value\n")
    return folder


# -- the function set and the triggers ------------------------------------------------------


def test_the_same_functions_everywhere() -> None:
    folders = {p.parent.name for p in (ROOT / "functions").glob("*/main.py")}
    files = {p.stem for p in (INFRA / "knative" / "services").glob("*.yaml")}
    assert folders == set(triggers.ALL_FUNCTIONS)
    assert set(stack()["functions"]) == folders
    assert set(knative_services()) == folders
    assert files == folders, "one file per Knative Service, named after it"
    for name in folders:
        assert (INFRA / "knative" / "services" / f"{name}.yaml").read_text().count("kind:") == 1


def test_knative_triggers_follow_the_trigger_table() -> None:
    (broker,) = objects("Broker")
    found = set()
    for trigger in objects("Trigger"):
        spec = trigger["spec"]
        function = spec["subscriber"]["ref"]["name"]
        assert spec["subscriber"]["ref"]["kind"] == "Service"
        assert spec["broker"] == broker["metadata"]["name"]
        assert set(spec["filter"]["attributes"]) == {"type"}
        found.add((function, spec["filter"]["attributes"]["type"]))
        delivery = spec["delivery"]
        assert delivery["retry"] == 5
        assert delivery["backoffPolicy"] == "exponential"
        assert delivery["backoffDelay"] == "PT1S"
        sink = delivery["deadLetterSink"]
        assert sink["ref"]["name"] == triggers.DEAD_LETTER_FUNCTION
        assert sink["ref"]["kind"] == "Service"
        # functions/dead-letter takes the failing function's name as its path.
        assert sink["uri"] == f"/{function}"
    assert found == {(f, t) for f, types in triggers.TRIGGERS.items() for t in types}
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == (
        "RabbitMQBroker"
    )
    (config,) = objects("RabbitmqBrokerConfig")
    assert broker["spec"]["config"]["name"] == config["metadata"]["name"]
    (cluster,) = objects("RabbitmqCluster")
    assert config["spec"]["rabbitmqClusterReference"]["name"] == cluster["metadata"]["name"]


def test_openfaas_topics_and_connector_queues_follow_the_trigger_table() -> None:
    for name, function in stack()["functions"].items():
        topic = function.get("annotations", {}).get("topic")
        if name in triggers.TRIGGERS:
            assert tuple(topic.split(",")) == triggers.TRIGGERS[name]
        else:
            assert topic is None, f"{name} is not triggered by events"
    values = yaml.safe_load((INFRA / "openfaas" / "rabbitmq-connector-values.yaml").read_text())
    queues = {q["name"] for q in values["queues"]}
    assert queues == {t for types in triggers.TRIGGERS.values() for t in types}
    assert queues <= set(EVENT_TYPES)
    assert all(q["durable"] for q in values["queues"])


def test_ce_dispatcher_deployment_invokes_the_async_gateway_path() -> None:
    (deployment,) = [
        d for d in objects("Deployment") if d["metadata"]["name"].endswith("dispatcher")
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "vid2mp3",
        "dispatch",
        "--invoke-url",
        "http://gateway.openfaas:8080/async-function",
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounted = {
        source["secret"]["name"]
        for volume in deployment["spec"]["template"]["spec"]["volumes"]
        if "projected" in volume
        for source in volume["projected"]["sources"]
    }
    for key in ("EVENTS_URL", "DATABASE_URL", "JWT_SECRET"):
        assert key not in env
        assert env[f"{key}_FILE"].startswith(f"{OPENFAAS_SECRETS_DIR}/")
        assert env[f"{key}_FILE"].rsplit("/", 1)[1] in mounted
    Config.from_env({**env, **{k.removesuffix("_FILE"): "x" for k in env if k.endswith("_FILE")}})


@pytest.mark.parametrize("platform", ["knative", "openfaas"])
def test_each_platform_deploys_the_outbox_relay(platform: str) -> None:
    (relay,) = [
        d
        for d in objects("Deployment")
        if d["metadata"]["name"] == "vid2mp3-relay"
        and (d["metadata"]["namespace"] == "vid2mp3") == (platform == "knative")
    ]
    (container,) = relay["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["vid2mp3", "relay"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert {"DATABASE_URL_FILE", "JWT_SECRET_FILE"} <= set(env)
    if platform == "knative":
        (binding,) = [
            b for b in objects("SinkBinding") if b["spec"]["subject"].get("name") == "vid2mp3-relay"
        ]
        assert binding["spec"]["sink"]["ref"]["kind"] == "Broker"
    else:
        assert "EVENTS_URL_FILE" in env
    script = (INFRA / f"deploy-{platform}.sh").read_text()
    assert f"infra/{platform}/relay.yaml" in script


# -- settings: documented, present on both platforms, secrets as files -----------------------


def test_settings_are_found_in_the_code() -> None:
    plain, secret = settings()
    assert {"DATABASE_URL", "JWT_SECRET", "AWS_SECRET_ACCESS_KEY"} <= secret
    assert {"VID2MP3_HOME", "K_SINK", "MAX_ATTEMPTS", "PUBLIC_URL", "AWS_REGION"} <= plain


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    plain, secret = settings()
    missing = sorted(k for k in plain | secret if f"`{k}`" not in docs)
    assert not missing, f"docs/deploy.md has no row for {missing}"


@pytest.mark.parametrize("platform", ["knative", "openfaas"])
def test_every_setting_is_set_on_each_platform(platform: str) -> None:
    plain, secret = settings()
    envs = {name: platform_env(platform, name) for name in triggers.ALL_FUNCTIONS}
    for key in sorted(plain | secret):
        if (platform, key) in NOT_SET:
            assert all(key not in env and f"{key}_FILE" not in env for env in envs.values())
            continue
        wanted = f"{key}_FILE" if key in secret else key
        assert any(wanted in env for env in envs.values()), f"{wanted} is set on no function"
    for name, env in envs.items():
        missing = {k for k in EVERY_FUNCTION[platform] if k not in env and f"{k}_FILE" not in env}
        assert not missing, f"{name} lacks {missing}"


@pytest.mark.parametrize("platform", ["knative", "openfaas"])
def test_secrets_are_files_never_values(platform: str) -> None:
    _, secret = settings()
    for name in triggers.ALL_FUNCTIONS:
        env = platform_env(platform, name)
        assert not secret & set(env), f"{name} has a secret as a plain value"
        for key in secret & {k.removesuffix("_FILE") for k in env}:
            path = env[f"{key}_FILE"]
            file = key.lower().replace("_", "-")
            if platform == "knative":
                assert path == f"{KNATIVE_SECRETS_DIR}/{file}"
                spec = knative_services()[name]["spec"]["template"]["spec"]
                (volume,) = [v for v in spec["volumes"] if "secret" in v]
                assert volume["secret"]["secretName"] == "vid2mp3-secrets"
                assert {"key": file, "path": file} in volume["secret"]["items"]
                mounts = spec["containers"][0]["volumeMounts"]
                assert {
                    "name": volume["name"],
                    "mountPath": KNATIVE_SECRETS_DIR,
                    "readOnly": True,
                } in mounts
            else:
                assert path == f"{OPENFAAS_SECRETS_DIR}/vid2mp3-{file}"
                assert f"vid2mp3-{file}" in stack()["functions"][name]["secrets"]


def test_shared_settings_are_the_same_on_both_platforms_and_load() -> None:
    assert openfaas_shared_env() == config_map()
    _, secret = settings()
    assert not secret & set(config_map())
    env = {
        **config_map(),
        "JWT_SECRET": "s",
        "DATABASE_URL": "mysql://u:p@mysql:3306/vid2mp3",
        "STORAGE_URL": "s3://vid2mp3",
        "EVENTS_URL": "amqp://u:p@rabbitmq:5672/",
    }
    config = Config.from_env(env)
    assert config.home == Path("/tmp/vid2mp3")
    for name in triggers.ALL_FUNCTIONS:
        only_here = {k: v for k, v in openfaas_env(name).items() if k in settings()[0]}
        Config.from_env({**env, **only_here})


# -- Knative and OpenFaaS specifics ----------------------------------------------------------


def test_knative_services_scale_limit_and_time_out() -> None:
    for name, service in knative_services().items():
        template = service["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert int(annotations["autoscaling.knative.dev/min-scale"]) >= 0
        assert int(annotations["autoscaling.knative.dev/max-scale"]) >= 1
        spec = template["spec"]
        resources = spec["containers"][0]["resources"]
        assert set(resources) == {"requests", "limits"}
        assert {"cpu", "memory"} <= set(resources["requests"]) & set(resources["limits"])
        assert 0 < spec["timeoutSeconds"] <= 600
        security = spec["containers"][0]["securityContext"]
        assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"]
        visibility = service["metadata"]["labels"].get("networking.knative.dev/visibility")
        assert (visibility == "cluster-local") == (name in triggers.EVENT_FUNCTIONS)
    convert = knative_services()["convert"]["spec"]["template"]["spec"]
    assert convert["containerConcurrency"] == 1
    assert convert["timeoutSeconds"] == 600


def test_openfaas_timeouts_fit_convert_and_the_gateway_is_raised() -> None:
    functions_ = stack()["functions"]
    for function in functions_.values():
        env = function["environment"]
        exec_ = duration_seconds(env["exec_timeout"])
        assert exec_ <= duration_seconds(env["write_timeout"])
        assert exec_ <= duration_seconds(env["read_timeout"])
        assert {"cpu", "memory"} <= set(function["limits"]) & set(function["requests"])
        assert function["readonly_root_filesystem"] is True
        assert {"com.openfaas.scale.min", "com.openfaas.scale.max"} <= set(function["labels"])
    convert = functions_["convert"]["environment"]
    knative_convert = knative_services()["convert"]["spec"]["template"]["spec"]
    assert duration_seconds(convert["exec_timeout"]) >= knative_convert["timeoutSeconds"]
    longest = max(duration_seconds(f["environment"]["write_timeout"]) for f in functions_.values())
    values = yaml.safe_load((INFRA / "openfaas" / "values.yaml").read_text())
    upstream = duration_seconds(values["gateway"]["upstreamTimeout"])
    assert longest <= upstream
    for key in ("readTimeout", "writeTimeout"):
        assert upstream < duration_seconds(values["gateway"][key])
        assert upstream < duration_seconds(values["faasnetes"][key])
    assert duration_seconds(values["queueWorker"]["ackWait"]) >= longest


def test_images_and_build_args_agree() -> None:
    raw = yaml.safe_load(expand_defaults((ROOT / "stack.yml").read_text()))
    for name, function in raw["functions"].items():
        image = f"{DEFAULT_REGISTRY}/vid2mp3-{name}:{__version__}"
        assert function["image"] == image
        container = knative_services()[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == image
        assert function["lang"] == "dockerfile" and function["handler"] == "./infra"
        assert function["build_args"] == {
            "FUNCTION": name,
            "VARIANT": "ffmpeg" if name == "convert" else "base",
            # Only transcribe carries the speech extra (faster-whisper and its model).
            **({"EXTRAS": "all,speech"} if name == "transcribe" else {}),
        }
    (dispatcher,) = [
        d for d in objects("Deployment") if d["metadata"]["name"].endswith("dispatcher")
    ]
    image = dispatcher["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{DEFAULT_REGISTRY}/vid2mp3-dead-letter:{__version__}"
    # faas-cli builds in build/<fn>/ from the handler plus these copies: they must hold what the
    # Dockerfile copies.
    copied = {p.removeprefix("./") for p in raw["configuration"]["copy"]}
    assert dockerfile_sources() <= copied


# -- validation of every object ----------------------------------------------------------------


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted((INFRA / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        props = schema["properties"]
        if "apiVersion" in props:
            found[(props["apiVersion"]["const"], props["kind"]["const"])] = schema
    return found


def schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


@pytest.mark.parametrize(
    ("where", "document"),
    manifest_objects(),
    ids=[f"{w}:{d['kind']}/{d['metadata']['name']}" for w, d in manifest_objects()],
)
def test_every_object_is_valid(where: str, document: dict[str, Any]) -> None:
    schema = crd_schemas().get((document["apiVersion"], document["kind"]))
    if schema is not None:
        assert schema_errors(schema, document) == []
        return
    try:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{where}: {document['kind']} is neither a core kind nor in infra/schemas/")
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(map(str, exc.path))
        pytest.fail(f"{where}: {path}: {exc.message}")


def test_kubernetes_validate_cli_passes_every_manifest_strictly() -> None:
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", K8S_VERSION]
        + [str(p) for p in MANIFESTS],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout


def test_stack_file_matches_its_schema() -> None:
    schema = json.loads((INFRA / "schemas" / "openfaas-stack.json").read_text())
    assert schema_errors(schema, stack()) == []
    for path in {p for f in stack()["functions"].values() for p in f["environment_file"]}:
        environment = yaml.safe_load((ROOT / path).read_text())
        assert set(environment) == {"environment"}
        assert all(isinstance(v, str) for v in environment["environment"].values())


@pytest.mark.parametrize(
    ("schema_file", "change", "complaint"),
    [
        (
            "knative-service.json",
            ("spec.template.spec", "containerConcurency", 1),
            "containerConcurency",
        ),
        ("knative-service.json", ("spec.template.spec", "timeoutSeconds", 900), "900"),
        ("knative-trigger.json", ("spec.delivery", "backoffDelay", "1s"), "1s"),
        ("knative-trigger.json", ("spec.delivery", "backoffPolicy", "fibonacci"), "fibonacci"),
        ("openfaas-stack.json", ("functions.convert", "enviroment", {}), "enviroment"),
        ("openfaas-stack.json", ("functions.convert.labels", "com.openfaas.scale.max", 5), "5"),
    ],
)
def test_schemas_refuse_mistakes(
    schema_file: str, change: tuple[str, str, Any], complaint: str
) -> None:
    schema = json.loads((INFRA / "schemas" / schema_file).read_text())
    original = {
        "knative-service.json": lambda: knative_services()["convert"],
        "knative-trigger.json": lambda: objects("Trigger")[0],
        "openfaas-stack.json": stack,
    }[schema_file]()
    assert schema_errors(schema, original) == []
    document = json.loads(json.dumps(original))
    where, key, value = change
    target = document
    for part in where.split("."):
        target = target[part]
    target[key] = value
    errors = schema_errors(schema, document)
    assert errors and any(complaint in e for e in errors), errors


# -- the image ----------------------------------------------------------------------------------


@cache
def dockerfile() -> str:
    return (INFRA / "Dockerfile").read_text()


def dockerfile_stages() -> dict[str, str]:
    stages: dict[str, str] = {}
    name = ""
    for line in dockerfile().splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line)
        if match:
            name = match.group(1)
        stages[name] = stages.get(name, "") + line + "\n"
    return stages


def dockerfile_sources() -> set[str]:
    sources = set()
    for line in dockerfile().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            sources.update(line.split()[1:-1])
    return sources


def test_hadolint_passes_at_warning_threshold() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "warning", str(INFRA / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_converter_stage_installs_ffmpeg() -> None:
    stages = dockerfile_stages()
    installing = [
        name for name, text in stages.items() if re.search(r"install.*\bffmpeg=", text, re.S)
    ]
    assert installing == ["runtime-ffmpeg"]
    assert "pip uninstall --yes imageio-ffmpeg" in stages["build"]
    final = stages["function"]
    assert re.search(r"^USER 10001:10001$", final, re.M), (
        "the function runs as a numeric non-root uid"
    )
    runtime = stages["runtime-base"]
    for setting in ("HOME=/tmp", "VID2MP3_HOME=/tmp/vid2mp3", "PORT=8080"):
        assert setting in runtime
    assert (
        'CMD ["gunicorn", "--config", "python:vid2mp3.runtime.gunicorn_conf", '
        '"vid2mp3.runtime.container:create_app()"]'
    ) in final
    assert "EXPOSE 8080" in final and "HEALTHCHECK" in final


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    root_ignore = (ROOT / ".dockerignore").read_text()
    assert (INFRA / ".dockerignore").read_text() == root_ignore
    allowed = {line[1:].rstrip("/") for line in root_ignore.splitlines() if line.startswith("!")}
    assert "*" in root_ignore.splitlines()
    assert dockerfile_sources() == allowed


def test_image_installs_the_tested_versions() -> None:
    spec = importlib.util.spec_from_file_location("pin_constraints", INFRA / "pin_constraints.py")
    assert spec and spec.loader
    pins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pins)
    expected = pins.render(pins.closure())
    assert (INFRA / "constraints.txt").read_text() == expected, (
        "infra/constraints.txt differs from this environment: run "
        ".venv/bin/python infra/pin_constraints.py"
    )


# -- the container entry ------------------------------------------------------------------------


def test_health_endpoints_answer_before_the_function(tmp_path: Path) -> None:
    notify = functions.load("notify")
    # functions-framework routes only POST to a CloudEvent function: a probe would get a 405.
    assert Client(notify).get("/_/health").status_code == 405
    wrapped = Client(HealthEndpoints(notify, ready=lambda: None))
    for path in ("/_/health", "/healthz", "/_/ready"):
        response = wrapped.get(path)
        assert response.status_code == 200, path
    not_ready = Client(HealthEndpoints(notify, ready=lambda: "no database"))
    response = not_ready.get("/_/ready")
    assert response.status_code == 503
    assert response.get_json()["error"] == "no database"
    # Other methods and paths are the function's.
    assert wrapped.post("/_/health").status_code == Client(notify).post("/_/health").status_code
    assert wrapped.post("/_/health").status_code != 200


def test_readiness_names_what_is_missing(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    assert ConfigReadiness({"VID2MP3_HOME": home})() is None
    missing_secret = ConfigReadiness({"VID2MP3_HOME": home, "DATABASE_URL": "mysql://db/x"})()
    assert missing_secret and "JWT_SECRET" in missing_secret
    no_sink = ConfigReadiness(
        {"VID2MP3_HOME": home, "DATABASE_URL": "mysql://db/x", "JWT_SECRET": "s"}
    )()
    assert no_sink and "EVENTS_URL" in no_sink and "K_SINK" in no_sink
    bound = {"VID2MP3_HOME": home, "DATABASE_URL": "mysql://db/x", "JWT_SECRET": "s"}
    assert ConfigReadiness({**bound, "K_SINK": "http://broker"})() is None


def test_create_app_needs_a_known_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUNCTION", raising=False)
    with pytest.raises(Exception, match="FUNCTION"):
        create_app()
    with pytest.raises(LookupError, match="register"):
        create_app("nope")


@pytest.fixture
def container_process(tmp_path: Path) -> Iterator[str]:
    """The image's command (gunicorn with our config, serving ``container:create_app()``), for
    ``jobs``."""
    port = free_port()
    runtime_env = re.search(r'GUNICORN_CMD_ARGS="([^"]+)"', dockerfile())
    assert runtime_env
    env = {
        **os.environ,
        "FUNCTION": "jobs",
        "PORT": str(port),
        "HOME": str(tmp_path),
        "VID2MP3_HOME": str(tmp_path / "vid2mp3"),
        "GUNICORN_CMD_ARGS": runtime_env.group(1).replace("--threads=8", "--threads=2")
        + " --bind=127.0.0.1:"
        + str(port),
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [
                tool("gunicorn"),
                "--config",
                "python:vid2mp3.runtime.gunicorn_conf",
                "vid2mp3.runtime.container:create_app()",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/_/health", process=process, log=log, timeout=60)
        yield base
    finally:
        stop(process)


def test_container_listens_on_port_from_the_environment() -> None:
    # The image passes no --bind: gunicorn's default is 0.0.0.0:$PORT (fixed when it is imported).
    result = subprocess.run(
        [sys.executable, "-c", "from gunicorn.config import Config; print(Config().bind)"],
        env={**os.environ, "PORT": "4321"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "['0.0.0.0:4321']"
    assert "--bind" not in dockerfile()


def test_container_command_serves_health_and_the_function(container_process: str) -> None:
    for path in ("/_/health", "/_/ready", "/healthz"):
        with urllib.request.urlopen(container_process + path, timeout=10) as response:
            assert response.status == 200, path
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(container_process + "/", timeout=10)
    # The jobs function itself answered: it wants a Bearer token.
    assert refused.value.code == 401
    assert "error" in json.loads(refused.value.read())


# -- deploy scripts -------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["deploy-knative.sh", "deploy-openfaas.sh", "lib.sh"])
def test_deploy_scripts_parse_and_pass_shellcheck(script: str) -> None:
    subprocess.run(["bash", "-n", str(INFRA / script)], check=True, timeout=30)
    result = subprocess.run(
        [tool("shellcheck"), str(INFRA / script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_knative_dry_run_deploys_everything_in_order(secrets_dir: Path) -> None:
    commands = script_commands("deploy-knative.sh", secrets=secrets_dir)
    steps = [
        ("kubectl", "patch", "configmap/config-features"),
        ("kubectl", "apply", "infra/k8s/namespace.yaml"),
        ("kubectl", "create", "secret", "vid2mp3-secrets"),
        ("kubectl", "create", "secret", "vid2mp3-backing"),
        ("kubectl", "apply", "infra/k8s/rabbitmq.yaml", "infra/k8s/mysql.yaml"),
        ("kubectl", "wait", "rabbitmqcluster/vid2mp3-rabbitmq"),
        ("kubectl", "apply", "infra/knative/config.yaml"),
        ("kubectl", "apply", "infra/knative/broker.yaml"),
        ("kubectl", "wait", "broker/vid2mp3"),
        ("kubectl", "apply", "infra/knative/sinkbinding.yaml"),
        ("kubectl", "apply", "infra/knative/services"),
        ("kubectl", "wait", "ksvc"),
        ("kubectl", "apply", "infra/knative/triggers.yaml"),
    ]
    at = -1
    for step in steps:
        at = index_of(commands, *step, after=at)
    applied = {
        word
        for command in commands
        if command[:2] == ["kubectl", "apply"]
        for word in command
        if word.startswith("infra/")
    }
    everything = {str(p.relative_to(ROOT)) for p in MANIFESTS if "openfaas" not in p.parts}
    covered = {p for p in everything if p in applied or str(Path(p).parent) in applied}
    assert covered == everything
    # The Secret holds every key a Service mounts.
    create = commands[index_of(commands, "create", "vid2mp3-secrets")]
    keys = {w.split("=", 2)[1] for w in create if w.startswith("--from-file=")}
    mounted = {
        item["key"]
        for service in knative_services().values()
        for volume in service["spec"]["template"]["spec"]["volumes"]
        if "secret" in volume
        for item in volume["secret"]["items"]
    }
    assert mounted <= keys


def test_knative_dry_run_points_images_at_another_registry(secrets_dir: Path) -> None:
    commands = script_commands(
        "deploy-knative.sh", "--registry", "registry.example.com/team", secrets=secrets_dir
    )
    rewrites = [c for c in commands if c[0] == "sed"]
    assert len(rewrites) == len(triggers.ALL_FUNCTIONS) + 1  # and the relay's Deployment
    assert all("s#ghcr.io/vid2mp3/#registry.example.com/team/#" in c for c in rewrites)


@pytest.mark.parametrize("connector", [False, True])
def test_openfaas_dry_run_deploys_everything_in_order(secrets_dir: Path, connector: bool) -> None:
    commands = script_commands(
        "deploy-openfaas.sh", *(["--connector"] if connector else []), secrets=secrets_dir
    )
    at = index_of(commands, "kubectl", "apply", "infra/k8s/namespace.yaml")
    at = index_of(commands, "kubectl", "apply", "infra/k8s/rabbitmq.yaml", after=at)
    at = index_of(commands, "kubectl", "wait", "rabbitmqcluster/vid2mp3-rabbitmq", after=at)
    wanted = {s for f in stack()["functions"].values() for s in f["secrets"]}
    created = {c[3] for c in commands if c[:3] == ["faas-cli", "secret", "create"]}
    assert wanted <= created
    last_secret = max(
        i for i, c in enumerate(commands) if c[:3] == ["faas-cli", "secret", "create"]
    )
    assert last_secret > at
    up = index_of(commands, "faas-cli", "up", "-f", "stack.yml", after=last_secret)
    if connector:
        index_of(
            commands,
            "helm",
            "rabbitmq-connector",
            "infra/openfaas/rabbitmq-connector-values.yaml",
            after=up,
        )
        assert not any("infra/openfaas/dispatcher.yaml" in c for c in commands)
    else:
        index_of(commands, "kubectl", "apply", "infra/openfaas/dispatcher.yaml", after=up)


def test_openfaas_dry_run_installs_the_platform_with_our_values(secrets_dir: Path) -> None:
    commands = script_commands(
        "deploy-openfaas.sh", "--install-platform", "--deploy-only", secrets=secrets_dir
    )
    helm = index_of(commands, "helm", "upgrade", "openfaas/openfaas", "infra/openfaas/values.yaml")
    assert helm < index_of(commands, "faas-cli", "deploy", "-f", "stack.yml")
    assert not any(c[:2] == ["faas-cli", "up"] for c in commands)


# -- documentation --------------------------------------------------------------------------------


def test_deploy_docs_give_the_commands_and_what_was_verified() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert re.search(r"^## Deploy", docs, re.M)
    for command in (
        "faas-cli up -f stack.yml",
        "faas-cli invoke",
        "kubectl apply -f infra/knative/services/",
        "infra/deploy-knative.sh",
        "infra/deploy-openfaas.sh",
        "docker build -f infra/Dockerfile",
    ):
        assert command in docs, command
    assert re.search(r"^## What was verified here", docs, re.M)
    assert re.search(r"^### Not verified", docs, re.M)
