"""Runtimes by platform: the card's `platform` names the runtime that serves the model.

To serve another kind of model, write one class that follows `service.runtimes.base.Runtime` in a file of this
package and add it to `RUNTIMES`. The registry checks the model file against its card before any runtime opens it.
"""

from __future__ import annotations

from typing import Final

from service.runtimes.base import Runtime
from service.runtimes.onnx import OnnxRuntime

RUNTIMES: Final[dict[str, type[Runtime]]] = {
    OnnxRuntime.platform: OnnxRuntime,
}
