"""deploy/k8s/training: the multi-node training Job validates offline against the Kubernetes schemas (strict),
like the serving manifests, and its pieces fit together: an indexed Job whose pods the headless Service names,
torchrun's c10d rendezvous on pod 0, as many nodes as the Job runs pods, and its own kustomization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_deploy_k8s import OLDEST, validator  # noqa: F401 - `validator` is a fixture

TRAINING = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "training"
MANIFESTS = sorted(p for p in TRAINING.glob("*.yaml") if p.name != "kustomization.yaml")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((TRAINING / name).read_text())  # type: ignore[no-any-return]


def flags(args: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in args if a.startswith("--") and "=" in a)


@pytest.mark.parametrize("version", ["oldest", "latest"])
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_training_manifest_validates_strictly(path: Path, version: str, validator: Any) -> None:  # noqa: F811
    for document in yaml.safe_load_all(path.read_text()):
        validator.validate(document, OLDEST if version == "oldest" else validator.latest_version(), strict=True)


def test_its_own_kustomization_lists_every_training_manifest() -> None:
    assert sorted(load("kustomization.yaml")["resources"]) == sorted(p.name for p in MANIFESTS)
    serving = yaml.safe_load((TRAINING.parent / "kustomization.yaml").read_text())["resources"]
    assert not any("training" in r for r in serving)  # `kubectl apply -k deploy/k8s` deploys only the service


def test_the_pods_find_pod_zero_for_the_rendezvous() -> None:
    job, service = load("job.yaml"), load("service.yaml")
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (trainer,) = pod["containers"]
    args = flags(trainer["args"])
    assert spec["completionMode"] == "Indexed"  # stable pod hostnames distill-train-0, -1, ...
    assert spec["completions"] == spec["parallelism"] == int(args["nnodes"])
    assert service["spec"]["clusterIP"] == "None" and pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    assert args["rdzv-backend"] == "c10d"
    host, port = args["rdzv-endpoint"].split(":")
    assert host == f"{job['metadata']['name']}-0.{service['metadata']['name']}"
    assert int(port) == service["spec"]["ports"][0]["port"] == trainer["ports"][0]["containerPort"]
    module = trainer["args"].index("-m")
    assert trainer["command"] == ["/opt/venv/bin/torchrun"]
    assert trainer["args"][module + 1 : module + 3] == ["distill_training", "pipeline"]


def test_the_trainer_is_non_root_bounded_and_writes_only_its_volumes() -> None:
    pod = load("job.yaml")["spec"]["template"]["spec"]
    (trainer,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["restartPolicy"] == "Never"
    assert trainer["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"cpu", "memory"} <= trainer["resources"]["limits"].keys()
    mounts = {m["mountPath"] for m in trainer["volumeMounts"]}
    args = flags(trainer["args"])
    assert {"/work", "/tmp"} <= mounts and all(args[k].startswith("/work/") for k in ("run-dir", "out", "reports"))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["runs"]["persistentVolumeClaim"]["claimName"] == load("pvc.yaml")["metadata"]["name"]
