"""The settings table of the README, generated from `Settings` so it cannot drift (`service/SETTINGS.md`)."""

from __future__ import annotations

from pathlib import Path

from pydantic.fields import FieldInfo

from service.settings import ENV_PREFIX, Settings

DOC_PATH = Path(__file__).with_name("SETTINGS.md")


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict) and not value:
        return "`{}`"
    return f"`{value}`"


def settings_markdown() -> str:
    lines = [
        "# Service settings",
        "",
        "Generated from `service.settings.Settings` by `python -m service --write-settings-doc`; do not edit.",
        "Every setting is an environment variable; `python -m service` flags (`--models`, `--host`, `--port`,",
        "`--log-level`, `--workers`) override them.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | {_default(field)} | {description} |")
    return "\n".join(lines) + "\n"


def write_settings_doc(path: Path = DOC_PATH) -> Path:
    path.write_text(settings_markdown())
    return path
