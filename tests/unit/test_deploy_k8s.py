"""deploy/k8s: every manifest validates offline against the Kubernetes schemas, and says what the issue asks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiers import require

from service.settings import ENV_PREFIX, Settings

try:
    import kubernetes_validate
except ImportError:  # a dev dependency: missing, the schema tests skip (and fail in CI)
    kubernetes_validate = None

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
# The oldest Kubernetes the manifests claim to support, and the newest the validator ships schemas for.
OLDEST = "1.29.0"


@pytest.fixture
def validator() -> Any:
    require(kubernetes_validate is not None, "kubernetes-validate is not installed (pip install kubernetes-validate)")
    return kubernetes_validate


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((K8S / name).read_text())  # type: ignore[no-any-return]


def pod_spec() -> dict[str, Any]:
    return load("deployment.yaml")["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", ["oldest", "latest"])
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_strictly(path: Path, version: str, validator: Any) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        validator.validate(document, OLDEST if version == "oldest" else validator.latest_version(), strict=True)


def test_strict_validation_catches_a_misspelt_field(validator: Any) -> None:
    deployment = copy.deepcopy(load("deployment.yaml"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(validator.ValidationError):
        validator.validate(deployment, validator.latest_version(), strict=True)


def test_kustomization_lists_every_manifest() -> None:
    assert sorted(load("kustomization.yaml")["resources"]) == sorted(p.name for p in MANIFESTS)


def test_every_kind_the_issue_asks_for() -> None:
    kinds = {load(p.name)["kind"] for p in MANIFESTS}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"}


def test_probes_use_the_v2_health_endpoints() -> None:
    (api,) = pod_spec()["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert api["startupProbe"]["httpGet"]["path"] == "/v2/health/live"


def test_containers_are_non_root_read_only_and_bounded() -> None:
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the images' USER
    for container in spec["initContainers"] + spec["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, container["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, container["name"]
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), container["name"]
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), container["name"]


def test_model_repository_arrives_through_the_init_container() -> None:
    spec = pod_spec()
    (init,) = spec["initContainers"]
    (api,) = spec["containers"]
    config = load("configmap.yaml")["data"]
    mounts = {m["name"]: m for m in api["volumeMounts"]}
    assert {m["name"] for m in init["volumeMounts"]} == {"models"}
    assert "emptyDir" in {v["name"]: v for v in spec["volumes"]}["models"]
    assert mounts["models"]["readOnly"] is True
    assert mounts["models"]["mountPath"] == config["DISTILL_MODELS_DIR"]


def test_prometheus_annotations_point_at_the_metrics_port() -> None:
    deployment = load("deployment.yaml")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    (api,) = pod_spec()["containers"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == api["ports"][0]["containerPort"]
    assert int(load("configmap.yaml")["data"]["DISTILL_PORT"]) == api["ports"][0]["containerPort"]


def test_configmap_holds_only_real_settings_and_they_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    data = load("configmap.yaml")["data"]
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert set(data) <= fields, f"not settings: {sorted(set(data) - fields)}"
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    assert str(Settings().models_dir) == data["DISTILL_MODELS_DIR"]


def test_selectors_match_the_pods() -> None:
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    for name, selector in (
        ("deployment.yaml", load("deployment.yaml")["spec"]["selector"]["matchLabels"]),
        ("service.yaml", load("service.yaml")["spec"]["selector"]),
        ("pdb.yaml", load("pdb.yaml")["spec"]["selector"]["matchLabels"]),
    ):
        assert selector.items() <= labels.items(), name
    target = load("hpa.yaml")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", load("deployment.yaml")["metadata"]["name"])
    assert load("hpa.yaml")["spec"]["minReplicas"] > load("pdb.yaml")["spec"]["minAvailable"]
