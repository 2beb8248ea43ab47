"""A local, deterministic stand-in for Open-Meteo's geocoding and forecast APIs.

It serves ``GET /v1/search?name=<city>`` and ``GET /v1/forecast?latitude=..&longitude=..``
with the same JSON shapes as https://open-meteo.com, on 127.0.0.1, from a background thread,
so the weather example runs offline. The same city always gets the same forecast.
"""

from __future__ import annotations

import json
import threading
import zlib
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

# WMO weather codes, as Open-Meteo reports them.
CODES = [0, 1, 2, 3, 45, 51, 61, 63, 71, 80, 95]


def geocode(name: str) -> dict[str, Any]:
    seed = zlib.crc32(name.lower().encode())
    return {
        "results": [
            {
                "id": seed,
                "name": name.title(),
                "latitude": round((seed % 12000) / 100 - 60, 4),
                "longitude": round((seed // 12000 % 36000) / 100 - 180, 4),
                "country": "Localland",
                "timezone": "UTC",
            }
        ]
    }


def forecast(latitude: float, longitude: float, days: int = 5) -> dict[str, Any]:
    seed = zlib.crc32(f"{latitude:.4f},{longitude:.4f}".encode())
    start = date(2026, 11, 25)
    highs = [round(8 + (seed >> i) % 17 + 0.5 * i, 1) for i in range(days)]
    return {
        "latitude": latitude,
        "longitude": longitude,
        "timezone": "UTC",
        "daily_units": {"temperature_2m_max": "°C", "precipitation_probability_mean": "%"},
        "daily": {
            "time": [(start + timedelta(days=i)).isoformat() for i in range(days)],
            "temperature_2m_max": highs,
            "temperature_2m_min": [
                round(h - 6 - (seed >> (i + 3)) % 4, 1) for i, h in enumerate(highs)
            ],
            "precipitation_probability_mean": [(seed >> (2 * i)) % 100 for i in range(days)],
            "weathercode": [CODES[(seed >> (3 * i)) % len(CODES)] for i in range(days)],
        },
    }


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the example prints the workflow's stream, not access logs

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if url.path.endswith("/search") and query.get("name"):
                body, status = geocode(query["name"]), 200
            elif url.path.endswith("/forecast"):
                body = forecast(float(query["latitude"]), float(query["longitude"]))
                status = 200
            else:
                body, status = {"error": True, "reason": "not found"}, 404
        except (KeyError, ValueError) as exc:
            body, status = {"error": True, "reason": f"bad query: {exc}"}, 400
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class WeatherSource:
    """The local weather API; a context manager giving its ``base_url``."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> WeatherSource:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
