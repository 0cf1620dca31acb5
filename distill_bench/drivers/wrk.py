"""Drive wrk (the load generator every benchmark target shares) with a fixed request, and read its results.

A Lua script sends one prepared body and, when wrk finishes, prints its summary and latency percentiles as JSON,
so nothing is scraped from wrk's human-readable output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Latency percentiles read from wrk (percent): enough points for a CDF, plus the tails.
CDF_POINTS = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9)

_SCRIPT = """
wrk.method = "POST"
{headers}
local f = assert(io.open("{body}", "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  local parts = {{}}
  for _, p in ipairs({{{points}}}) do
    table.insert(parts, string.format('"%s":%d', p, latency:percentile(p)))
  end
  io.write(string.format(
    'WRK_JSON{{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
    .. '"latency_mean_us":%.1f,"latency_us":{{%s}}}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency.mean,
    table.concat(parts, ",")))
end
"""


@dataclass(frozen=True)
class Request:
    """What every connection sends, over and over."""

    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    socket_errors: int  # connect + read + write + timeout: requests that got no response
    non_2xx: int  # responses with a status >= 400 (wrk counts these, and they are answers, not losses)
    latency_us: dict[float, float]  # percentile (percent) -> microseconds
    latency_mean_us: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, request: Request, connections: int, duration_s: int) -> WrkResult:
    threads = 1 if connections < 2 else 2  # 2 cores: wrk gets at most what the server leaves
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body"
        body.write_bytes(request.body)
        headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in request.headers.items())
        script = Path(tmp) / "bench.lua"
        points = ", ".join(str(p) for p in CDF_POINTS)
        script.write_text(_SCRIPT.format(headers=headers, body=body, points=points))
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s", "-s", str(script)]
        output = subprocess.run([*command, url + request.path], capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK_JSON"))
    data = json.loads(line.removeprefix("WRK_JSON"))
    return WrkResult(
        connections=connections,
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        non_2xx=data["status"],
        latency_us={float(p): float(v) for p, v in data["latency_us"].items()},
        latency_mean_us=float(data["latency_mean_us"]),
    )
