"""deploy/helm/values.yaml against Dagster's Helm chart schemas, the production instance and the benchmark.

The schemas are the chart's own `values.schema.json` files, fetched into `data/` (see `data/README.md` for
where from and which versions). Helm validates the values after merging them over the chart's defaults;
those defaults are not in the test data, so:

- the main chart's `required` lists (filled by its defaults: the daemon's probes, the webserver's
  service, ...) are dropped, except the conditional ones (`type: K8sRunLauncher` requires its config);
- the user-deployments chart's top-level `required` keys (its `global` defaults) are dropped; a
  deployment's own requirements (name, image, port) stay;
- Kubernetes' definitions (kubernetesjsonschema.dev) resolve to "any value"; the pod-level fields the
  values set are checked against the Kubernetes Python client's models instead.

The rest applies as Helm applies it: types, enums, unknown keys where forbidden, conditions. A test below
feeds in broken values to show the relaxed schemas still catch mistakes.
"""

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes.client
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
VALUES: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text(encoding="utf-8"))
PROD: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "dagster.prod.yaml").read_text(encoding="utf-8"))
K8S_DEFINITIONS = "https://kubernetesjsonschema.dev/"
DEPLOYMENT = VALUES["dagster-user-deployments"]["deployments"][0]
LAUNCHER = VALUES["runLauncher"]["config"]["k8sRunLauncher"]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _offline_kubernetes(schema: dict[str, Any]) -> Registry:
    """Kubernetes' definition documents, with every definition the schema points at accepting any value."""
    documents: dict[str, dict[str, Any]] = {}
    for ref in _refs(schema):
        if ref.startswith(K8S_DEFINITIONS):
            uri, _, pointer = ref.partition("#")
            node = documents.setdefault(uri, {})
            for part in pointer.strip("/").split("/"):
                node = node.setdefault(part, {})
    return Registry().with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT202012)) for uri, doc in documents.items())


def _drop_required(node: Any) -> Any:
    """Without the `required` lists of object definitions (those the chart's defaults fill)."""
    if isinstance(node, dict):
        kept = {k: _drop_required(v) for k, v in node.items() if not (k == "required" and "properties" in node)}
        return kept
    if isinstance(node, list):
        return [_drop_required(v) for v in node]
    return node


def _validator(name: str, *, drop_all_required: bool) -> jsonschema.Draft202012Validator:
    schema = json.loads((DATA / name).read_text(encoding="utf-8"))
    schema = _drop_required(schema) if drop_all_required else {**schema, "required": []}
    return jsonschema.Draft202012Validator(schema, registry=_offline_kubernetes(schema))


MAIN = _validator("dagster.values.schema.json", drop_all_required=True)
USER_DEPLOYMENTS = _validator("dagster-user-deployments.values.schema.json", drop_all_required=False)


def _leaves(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    """The error, and under `anyOf` the reasons each alternative failed."""
    yield error
    for sub in error.context or []:
        yield from _leaves(sub)


def _errors(values: dict[str, Any]) -> list[str]:
    found = [*MAIN.iter_errors(values), *USER_DEPLOYMENTS.iter_errors(values.get("dagster-user-deployments", {}))]
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for top in found for e in _leaves(top)]


def test_values_match_the_chart_schemas() -> None:
    assert _errors(VALUES) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(envSecret=[]), "'envSecret' was unexpected"),
    (lambda v: v["runLauncher"].update(type="K8sLauncher"), "'K8sLauncher' is not one of"),
    (lambda v: v["runLauncher"]["config"].pop("k8sRunLauncher"), "'k8sRunLauncher' is a required property"),
    (lambda v: v["dagster-user-deployments"]["deployments"][0].update(port="4000"), "'4000' is not of type 'integer'"),
    (lambda v: v["dagster-user-deployments"]["deployments"][0].pop("image"), "'image' is a required property"),
    (lambda v: v["dagster-user-deployments"]["deployments"][0]["image"].update(pullPolicy="Sometimes"),
     "'Sometimes' is not one of"),
    (lambda v: v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"][1]
     .update(value={"perValue": True}), "tagConcurrencyLimits"),
    (lambda v: v["dagsterDaemon"].update(runRetry={}), "'runRetry' was unexpected"),
])
def test_the_schema_check_catches_mistakes(change: Any, expected: str) -> None:
    broken = copy.deepcopy(VALUES)
    change(broken)
    errors = _errors(broken)
    assert any(expected in e for e in errors), errors


def _kubernetes_keys(data: Any, model: str, path: str) -> list[str]:
    """Keys of `data` that the Kubernetes model (e.g. `V1SecurityContext`) does not have, recursively."""
    cls = getattr(kubernetes.client, model)
    by_key = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    wrong = []
    for key, value in data.items():
        if key not in by_key:
            wrong.append(f"{path}.{key} is not a field of {model}")
        elif (nested := cls.openapi_types[by_key[key]]).startswith("V1") and isinstance(value, dict):
            wrong.extend(_kubernetes_keys(value, nested, f"{path}.{key}"))
    return wrong


QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def test_pod_fields_are_kubernetes_fields() -> None:
    fields = [(DEPLOYMENT["podSecurityContext"], "V1PodSecurityContext", "deployment.podSecurityContext"),
              (DEPLOYMENT["securityContext"], "V1SecurityContext", "deployment.securityContext"),
              (LAUNCHER["securityContext"], "V1SecurityContext", "k8sRunLauncher.securityContext")]
    resources = {"deployment": DEPLOYMENT["resources"], "k8sRunLauncher": LAUNCHER["resources"],
                 "dagsterDaemon": VALUES["dagsterDaemon"]["resources"],
                 "dagsterWebserver": VALUES["dagsterWebserver"]["resources"]}
    fields += [(r, "V1ResourceRequirements", f"{where}.resources") for where, r in resources.items()]
    fields += [(s, "V1SecretEnvSource", "deployment.envSecrets") for s in DEPLOYMENT["envSecrets"]]
    assert [w for data, model, path in fields for w in _kubernetes_keys(data, model, path)] == []
    quantities = [q for r in resources.values() for kind in r.values() for q in kind.values()]
    assert quantities and all(QUANTITY.match(str(q)) for q in quantities), quantities


def _camel(settings: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): v for k, v in settings.items()}


def test_instance_settings_are_the_production_ones() -> None:
    runs, pools = PROD["concurrency"]["runs"], PROD["concurrency"]["pools"]
    queued = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert VALUES["dagsterDaemon"]["runCoordinator"]["type"] == PROD["run_coordinator"]["class"]
    assert queued["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == [_camel(limit) for limit in runs["tag_concurrency_limits"]]
    assert VALUES["concurrency"]["enabled"] is True
    assert VALUES["concurrency"]["pools"] == {"defaultLimit": pools["default_limit"], "granularity": pools["granularity"]}
    assert "runs" not in VALUES["concurrency"]  # the chart refuses run limits in both places
    retries = VALUES["dagsterDaemon"]["runRetries"]
    assert _camel(PROD["run_retries"]) == retries
    monitoring = VALUES["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] and monitoring["startTimeoutSeconds"] == PROD["run_monitoring"]["start_timeout_seconds"]
    assert VALUES["telemetry"] == PROD["telemetry"]
    assert VALUES["postgresql"]["postgresqlScheme"] == PROD["storage"]["postgres"]["postgres_db"]["scheme"]
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"


def test_code_location_image_and_secrets() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    module = re.search(r'^code_location_target_module = "([^"]+)"$', pyproject,  # [tool.dg.project]
                       re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert DEPLOYMENT["codeServerArgs"] == ["-m", module]
    assert f"EXPOSE {DEPLOYMENT['port']}" in dockerfile
    uid = re.search(r"--uid (\d+)", dockerfile).group(1)  # type: ignore[union-attr]
    assert DEPLOYMENT["podSecurityContext"]["runAsUser"] == LAUNCHER["securityContext"]["runAsUser"] == int(uid)
    assert DEPLOYMENT["includeConfigInLaunchedRuns"] == {"enabled": True}  # runs get the same env and secrets
    secrets = {s["name"] for s in DEPLOYMENT["envSecrets"]}
    assert {"sfmc-credentials", "aep-credentials", "sfmc-assets-storage"} <= secrets
    env = DEPLOYMENT["env"]
    assert not [k for k in env if re.search(r"SECRET|PASSWORD|TOKEN|KEY", k)]  # secrets only via envSecrets
    assert make_url(env["SFMC_ASSETS_WAREHOUSE"]).password is None  # the warehouse password is PGPASSWORD
    assert env["SFMC_ASSETS_LAKE_URI"].startswith("s3://")
    assert VALUES["global"]["postgresqlSecretName"] and VALUES["generatePostgresqlPasswordSecret"] is False


def _mib(quantity: str) -> float:
    number, unit = re.match(r"^([0-9.]+)([A-Za-z]*)$", quantity).groups()  # type: ignore[union-attr]
    scale = {"": 1 / 2**20, "k": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(number) * scale[unit]


def test_run_pods_are_sized_from_the_memory_benchmark() -> None:
    """Each step process peaks at the benchmark's largest measured RSS; a run pod runs MAX_CONCURRENT of them."""
    memory = json.loads((REPO / "bench" / "results" / "memory.json").read_text(encoding="utf-8"))
    publish = json.loads((REPO / "bench" / "results" / "publish.json").read_text(encoding="utf-8"))
    step_peak = max(max(s["peak_rss_mb"] for s in memory["sizes"].values()), publish["ours"]["peak_rss_mb"])
    worker = max(s["rss_start_mb"] for s in memory["sizes"].values())  # a process with the code imported
    steps = int(DEPLOYMENT["env"]["SFMC_ASSETS_MAX_CONCURRENT"])
    requests, limits = LAUNCHER["resources"]["requests"], LAUNCHER["resources"]["limits"]
    assert _mib(requests["memory"]) * 2**20 / 1e6 >= step_peak + worker  # one step at a time always fits
    assert _mib(limits["memory"]) * 2**20 / 1e6 >= steps * step_peak + worker
    assert _mib(DEPLOYMENT["resources"]["limits"]["memory"]) * 2**20 / 1e6 >= 2 * worker  # the code server
