"""Mastra's weather workflow in stepstream: fetch a forecast, then stream an activity plan.

    python examples/weather.py [--city London] [--json] [-p metrics] [--events-dir DIR]
    stepstream serve examples/weather.py    # the Studio at http://127.0.0.1:4111/

Offline by default: a local Open-Meteo-style weather source and a local deterministic
OpenAI-compatible model start on 127.0.0.1. Set ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL``,
``OPENAI_MODEL`` if you like) to plan with a real model, and ``GEOCODING_API_URL`` /
``WEATHER_API_URL`` (e.g. https://geocoding-api.open-meteo.com/v1 and
https://api.open-meteo.com/v1) to use a real weather API.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import functools
import json
import os
import sys
import time
from typing import Any

import httpx
from pydantic import BaseModel
from weather_source import WeatherSource

from stepstream import Event, RuntimeContext, StepContext, Workflow, get_plugin_manager, step
from stepstream.agents import Agent
from stepstream.cli import closed_pipe
from stepstream.plugins.jsonl import JsonLinesExporter
from stepstream.testing import ModelServer, planner_responder

# What a served workflow uses when no runtime context names the APIs: the environment's, or
# the local stand-ins, started by the first run that needs them and stopped at exit.
_LOCAL = contextlib.ExitStack()
atexit.register(_LOCAL.close)


@functools.cache
def local_weather_url() -> str:
    """The base URL of the local weather source, started at the first call."""
    return _LOCAL.enter_context(WeatherSource()).base_url


@functools.cache
def local_model_url() -> str:
    """The base URL of the local deterministic model, started at the first call."""
    return _LOCAL.enter_context(ModelServer(planner_responder(delay=0.02))).base_url


CONDITIONS = {
    0: "Clear sky", 1: "Mainly clear", 2: "Partly cloudy", 3: "Overcast", 45: "Foggy",
    51: "Light drizzle", 61: "Slight rain", 63: "Moderate rain", 71: "Slight snow fall",
    80: "Rain showers", 95: "Thunderstorm",
}  # fmt: skip


class City(BaseModel):
    city: str


class DayForecast(BaseModel):
    date: str
    maxTemp: float
    minTemp: float
    precipitationChance: int
    condition: str
    location: str


class Forecast(BaseModel):
    days: list[DayForecast]


@step(id="fetch-weather", description="Fetches the weather forecast for a city")
async def fetch_weather(ctx: StepContext[City]) -> Forecast:
    geocoding = ctx.runtime_context.get("geocoding_url") or os.environ.get("GEOCODING_API_URL")
    weather = ctx.runtime_context.get("weather_url") or os.environ.get("WEATHER_API_URL")
    if not (geocoding and weather):
        geocoding = weather = local_weather_url()
    async with httpx.AsyncClient(timeout=10) as http:
        found = await http.get(
            f"{geocoding}/search", params={"name": ctx.input_data.city, "count": 1}
        )
        found.raise_for_status()
        results = found.json().get("results") or []
        if not results:
            raise LookupError(f"location {ctx.input_data.city!r} not found")
        place = results[0]
        answer = await http.get(
            f"{weather}/forecast",
            params={
                "latitude": place["latitude"],
                "longitude": place["longitude"],
                "daily": "temperature_2m_max,temperature_2m_min,"
                "precipitation_probability_mean,weathercode",
                "timezone": "auto",
            },
        )
        answer.raise_for_status()
    daily = answer.json()["daily"]
    return Forecast(
        days=[
            DayForecast(
                date=day,
                maxTemp=daily["temperature_2m_max"][i],
                minTemp=daily["temperature_2m_min"][i],
                precipitationChance=daily["precipitation_probability_mean"][i],
                condition=CONDITIONS.get(daily["weathercode"][i], "Unknown"),
                location=place["name"],
            )
            for i, day in enumerate(daily["time"])
        ]
    )


def planning_prompt(ctx: StepContext[Any]) -> dict[str, str]:
    forecast: Forecast = ctx.input_data
    today = forecast.days[0]
    return {
        "prompt": f"Based on the following weather forecast for {today.location}, suggest "
        f"appropriate activities:\n{json.dumps(today.model_dump(), indent=2)}"
    }


def build_workflow(planner: Agent) -> Workflow:
    return (
        Workflow(id="weather-workflow", input_schema=City)
        .then(fetch_weather)
        .map(planning_prompt)
        .then(step.from_agent(planner))
        .commit()
    )


class LocalPlanner(Agent):
    """The weather agent on the local deterministic model, which starts at its first answer."""

    def __init__(self) -> None:
        super().__init__("Weather Agent", INSTRUCTIONS, "local-planner", api_key="local")

    def _client(self) -> Any:
        # Served workflows are built at import: the model server starts when first needed.
        self.base_url = local_model_url()
        return super()._client()


def default_planner() -> Agent:
    """The configured model when ``OPENAI_API_KEY`` is set, else the local one."""
    if os.environ.get("OPENAI_API_KEY"):
        return Agent("Weather Agent", INSTRUCTIONS, os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    return LocalPlanner()


class Printer:
    """Shows a run to a person: step boundaries, and the agent's answer token by token."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.in_text = False

    def show(self, event: Event) -> None:
        if event.type == "tool-call-delta":
            if not self.in_text:
                print("  │ ", end="")
                self.in_text = True
            print(event.args_text_delta.replace("\n", "\n  │ "), end="", flush=True)
            return
        if self.in_text:
            print()
            self.in_text = False
        if event.type == "start":
            print(f"▶ run {event.run_id}")
        elif event.type == "step-start":
            self.started[event.step_id] = time.perf_counter()
            print(f"● {event.step_id} …")
        elif event.type == "tool-call-streaming-start":
            print(f"  {event.name} is answering:")
        elif event.type == "step-result":
            took = (
                time.perf_counter() - self.started.get(event.step_id, time.perf_counter())
            ) * 1e3
            mark = "✓" if event.status == "success" else "✗"
            detail = "" if event.status == "success" else f": {event.error}"
            print(f"{mark} {event.step_id} {event.status} in {took:.0f} ms{detail}")
        elif event.type == "error":
            print(f"  model error: {event.error}")
        elif event.type == "finish":
            print(f"■ finish {event.run_id}")
        print(end="", flush=True)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--city", default="London")
    parser.add_argument("--json", action="store_true", help="one wire event (JSON) per line")
    parser.add_argument(
        "-p",
        dest="plugins",
        action="append",
        default=[],
        metavar="NAME",
        help="enable an optional built-in plugin (e.g. metrics: printed at the end)",
    )
    parser.add_argument("--events-dir", help="also write the run's events to DIR/<run id>.jsonl")
    args = parser.parse_args(argv)
    say = (lambda *a: None) if args.json else print

    with contextlib.ExitStack() as stack:
        geocoding = os.environ.get("GEOCODING_API_URL")
        weather = os.environ.get("WEATHER_API_URL")
        if not (geocoding and weather):
            source = stack.enter_context(WeatherSource())
            geocoding = weather = source.base_url
            say(f"weather: local Open-Meteo-style source at {source.base_url}")
        if os.environ.get("OPENAI_API_KEY"):
            model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
            planner = Agent("Weather Agent", INSTRUCTIONS, model)
            say(f"model: {model} at {os.environ.get('OPENAI_BASE_URL', 'OpenAI')}")
        else:
            server = stack.enter_context(ModelServer(planner_responder(delay=0.02)))
            planner = Agent(
                "Weather Agent",
                INSTRUCTIONS,
                "local-planner",
                base_url=server.base_url,
                api_key="local",
            )
            say(f"model: local deterministic model at {server.base_url} (no OPENAI_API_KEY set)")
        say()
        context = RuntimeContext({"geocoding_url": geocoding, "weather_url": weather})
        plugins: list[Any] = list(args.plugins)
        exporter = JsonLinesExporter(args.events_dir) if args.events_dir else None
        if exporter is not None:
            plugins.append(("jsonl", exporter))
        pm = get_plugin_manager(plugins=plugins)
        run = await build_workflow(planner).create_run(plugin_manager=pm)
        printer = Printer()
        stream = run.stream(input_data={"city": args.city}, runtime_context=context)
        async for event in stream:
            if args.json:
                print(json.dumps(event.to_wire()), flush=True)
            else:
                printer.show(event)
        result = await stream.get_workflow_state()
    if exporter is not None:
        exporter.close()  # flushes the file
        say(f"events written to {exporter.path_for(run.run_id)}")
    if "metrics" in args.plugins:
        say("\n" + pm.get_plugin("metrics").render_prometheus().rstrip())
    # With --json the usage travels as the step-usage events (one per model response).
    u = result.usage or {}  # the whole run's (result.steps[id].usage: per step)
    n = u.get("requests", 0)
    say(
        f"\nusage: {u.get('total_tokens', 0)} tokens ({u.get('input_tokens', 0)} in, "
        f"{u.get('output_tokens', 0)} out) in {n} model response{'' if n == 1 else 's'}"
        + (f", cost {u['cost']:.6g}" if "cost" in u else "")
    )
    say(f"status: {result.status}" + (f" ({result.error})" if result.error else ""))
    return 0 if result.status == "success" else 1


INSTRUCTIONS = (
    "You are a local activities and travel expert who excels at weather-based planning. "
    "Given a forecast, suggest a morning, afternoon and evening activity and a practical tip."
)

# What `stepstream serve examples/weather.py` serves (Mastra's key for it: weatherWorkflow).
weatherWorkflow = build_workflow(default_planner())

if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(sys.argv[1:])))
    except KeyboardInterrupt:  # Ctrl-C: the run was canceled on the way out
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `| head` stopped reading
        sys.exit(closed_pipe())
