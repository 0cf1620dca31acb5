"""The service never unpickles and never imports torch; training loads checkpoints with `weights_only=True`;
the only endpoints that change the server's state (repository control) are off by default and need a token."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "torch"}


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_service_modules_never_unpickle() -> None:
    problems = []
    for path in _sources("service"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                continue
            problems += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n in PICKLING_MODULES]
        for call in _calls(tree):
            name = _dotted(call.func)
            pickles = any(k.arg == "allow_pickle" and not _false(k.value) for k in call.keywords)
            if name.endswith(("np.load", "numpy.load")) and pickles:
                problems.append(f"{path.relative_to(ROOT)}:{call.lineno} np.load(allow_pickle=...)")
            if name.endswith(("torch.load", "pickle.load", "pickle.loads")):
                problems.append(f"{path.relative_to(ROOT)}:{call.lineno} {name}")
    assert not problems


def _false(value: ast.expr) -> bool:
    return isinstance(value, ast.Constant) and value.value is False


def test_training_loads_checkpoints_with_weights_only() -> None:
    loads = []
    for path in _sources("distill_training"):
        for call in _calls(ast.parse(path.read_text(), str(path))):
            if _dotted(call.func).endswith("torch.load"):
                weights_only = [k.value for k in call.keywords if k.arg == "weights_only"]
                ok = (
                    len(weights_only) == 1
                    and isinstance(weights_only[0], ast.Constant)
                    and weights_only[0].value is True
                )
                loads.append((f"{path.relative_to(ROOT)}:{call.lineno}", ok))
    assert loads, "no torch.load found: the scan is looking in the wrong place"
    assert [where for where, ok in loads if not ok] == []


def test_the_running_service_never_imports_torch(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        import service, service.app, service.__main__, service.workers
        from fastapi.testclient import TestClient
        from servers import wait_ready
        from tiny_models import make_repo
        from service.app import create_app
        from service.settings import Settings
        repo = make_repo(__import__("pathlib").Path({str(tmp_path)!r}) / "models")
        sys.modules.pop("torch", None)  # onnx (used to build the test models) must not count
        with TestClient(create_app(Settings(models_dir=repo, intra_op_threads=1, warmup_runs=1))) as client:
            wait_ready(client)
            rows = {{"inputs": [[0] * 784]}}
            assert client.post("/v1/compare", json=rows).status_code == 200
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("torch modules:", loaded)
        assert not loaded
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_repository_control_changes_state_and_it_is_off_by_default() -> None:
    """Inference changes nothing but counters, and the index only reads; load and unload change what is served,
    so they answer 403 unless model_control is explicit, which itself refuses to start without a token unless
    the operator opts out. A new endpoint that changes state must be added here, off and protected likewise."""
    from fastapi.testclient import TestClient
    from pydantic import ValidationError

    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(models_dir=ROOT / "no-such-repository"))
    routers = [r.original_router for r in app.routes if hasattr(r, "original_router")]
    routes = app.routes + [route for router in routers for route in router.routes]
    writes = {
        (route.path, method)
        for route in routes
        for method in getattr(route, "methods", set()) or set()
        if method not in ("GET", "HEAD")
    }
    control = {("/v2/repository/models/{name}/load", "POST"), ("/v2/repository/models/{name}/unload", "POST")}
    reads = {("/v1/classify", "POST"), ("/v1/compare", "POST"), ("/v2/repository/index", "POST")}
    assert writes == reads | control  # v2 infer is served ahead of routing
    with TestClient(app) as client:
        for path in ("/v2/repository/models/m/load", "/v2/repository/models/m/unload"):
            response = client.post(path)
            assert response.status_code == 403 and "DISTILL_MODEL_CONTROL=explicit" in response.json()["error"]
    with pytest.raises(ValidationError, match="control_token"):
        Settings(model_control="explicit")
