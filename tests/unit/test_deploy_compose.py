"""docker-compose.yml, deploy/Dockerfile and .dockerignore, read as files: the promises the stack makes.

tests/deploy runs them for real; these checks hold on any machine, without an engine.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"trainer", "api", "prometheus", "grafana", "locust"}
_DEFAULTED = re.compile(r"^\$\{[A-Z_]+:-([^}]+)\}$")


def compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())  # type: ignore[no-any-return]


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped), in file order."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "deploy" / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (raw.strip() for raw in text.splitlines()):
        if match := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I):
            current = stages.setdefault(match.group(1), [])
        if line and not line.startswith("#"):
            current.append(line)
    return stages


def test_compose_uses_only_keys_both_compose_versions_read() -> None:
    top = compose()
    assert set(top) == {"services", "volumes"}, "no `version` (v2 warns) or `name` (v1 rejects)"
    assert set(top["services"]) == SERVICES


def test_api_starts_after_the_trainer_completed_and_serves_its_volume() -> None:
    services = compose()["services"]
    assert services["api"]["depends_on"] == {"trainer": {"condition": "service_completed_successfully"}}
    assert "models:/models" in services["trainer"]["volumes"]
    assert "models:/models:ro" in services["api"]["volumes"]
    assert services["trainer"]["restart"] == "no"
    assert "/v2/health/ready" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["api"]["read_only"] is True


def test_api_environment_names_only_real_settings() -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    names = {item.split("=")[0] for item in compose()["services"]["api"]["environment"]}
    assert names <= fields, f"not settings: {sorted(names - fields)}"


def test_locust_runs_headless_only_under_the_loadtest_profile() -> None:
    services = compose()["services"]
    assert {name for name, s in services.items() if "profiles" in s} == {"locust"}
    locust = services["locust"]
    assert locust["profiles"] == ["loadtest"]
    assert "--headless" in locust["command"]
    assert "http://api:8000" in locust["command"]
    assert any(v.endswith(":/reports") for v in locust["volumes"])
    assert (ROOT / "deploy" / "locust" / "locustfile.py").is_file()


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_images_are_overridable_with_official_defaults(service: str) -> None:
    match = _DEFAULTED.match(compose()["services"][service]["image"])
    assert match, f"{service}: image must be ${{VAR:-default}}"
    official = {"prometheus": "prom/prometheus:", "grafana": "grafana/grafana:"}
    assert match.group(1).startswith(official.get(service, "distill-serve/"))


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_published_ports_are_overridable_and_local_by_default(service: str) -> None:
    for port in compose()["services"][service].get("ports", []):
        match = re.fullmatch(r"(\$\{[^}]+\}):(\$\{[^}]+\}):(\d+)", port)
        assert match, f"{port}: publish as ${{BIND:-127.0.0.1}}:${{PORT:-N}}:N"
        bind, host_port = _DEFAULTED.match(match.group(1)), _DEFAULTED.match(match.group(2))
        assert bind and bind.group(1) == "127.0.0.1", port
        assert host_port and host_port.group(1).isdigit(), port


def test_bind_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


def test_builds_name_dockerfile_stages_on_an_overridable_base() -> None:
    stages = dockerfile_stages()
    for name, service in compose()["services"].items():
        if "build" in service:
            assert service["build"]["target"] in stages, name
            assert _DEFAULTED.match(service["build"]["args"]["BASE_IMAGE"]).group(1) == "python:3.11-slim"  # type: ignore[union-attr]


def test_serve_image_never_installs_torch_and_comes_first() -> None:
    stages = dockerfile_stages()
    names = list(stages)
    # The classic builder builds every stage before the target: serve must not sit behind the torch stage.
    assert names.index("serve") < names.index("trainer")
    assert names.index("serve") < names.index("loadtest")
    for stage in ("python", "serve-build", "serve"):
        assert not any("torch" in line for line in stages[stage]), stage


def test_serve_image_is_non_root_exec_form_and_healthchecked() -> None:
    serve = dockerfile_stages()["serve"]
    (user,) = [line.split()[1] for line in serve if line.startswith("USER ")]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0, "numeric non-root (runAsNonRoot can check it)"
    (entrypoint,) = [line.removeprefix("ENTRYPOINT ") for line in serve if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint)[1:3] == ["-m", "service"], "exec form: SIGTERM reaches uvicorn"
    (healthcheck,) = [line for line in serve if line.startswith("HEALTHCHECK ")]
    assert "/v2/health/ready" in healthcheck


def test_trainer_installs_the_pinned_torch_from_the_cpu_index() -> None:
    trainer = dockerfile_stages()["trainer"]
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    (torch_pin,) = [p for p in pins if p.startswith("torch")]
    assert f"ARG TORCH_VERSION={torch_pin.removeprefix('torch==')}" in trainer
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in trainer


def test_dockerignore_keeps_models_and_environments_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "an allowlist: only what the images copy"
    copied = {
        line.split()[1].rstrip("/")
        for lines in dockerfile_stages().values()
        for line in lines
        if line.startswith("COPY ") and "--from" not in line
    }
    assert {f"!{path}" for path in copied} <= set(patterns)
