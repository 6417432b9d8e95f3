"""benchmarks/adapter_flows.py at a tiny size: a recorded backfill replays against the
adapter's flows with every request and result the recorded one, and a request that differs
is caught."""

from __future__ import annotations

import gc
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture
def adapter_flows(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    callbacks = list(gc.callbacks)
    import adapter_flows  # the benchmark, found once its folder is on the path

    yield adapter_flows
    gc.callbacks[:] = callbacks  # round_trips, imported by it, counts collections


def test_a_recorded_backfill_replays_as_recorded(
    adapter_flows: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = tmp_path / "flows.pickle"
    adapter_flows.record(40, recorded)
    calls = pickle.loads(recorded.read_bytes())["calls"]  # noqa: S301  # written just above
    assert {c["name"] for c in calls} == set(adapter_flows.METHODS)
    adapter_flows.replay(recorded, 1)
    assert "every request and result the recorded one" in capsys.readouterr().out


def test_a_request_that_differs_is_caught(adapter_flows: Any, tmp_path: Path) -> None:
    recorded = tmp_path / "flows.pickle"
    adapter_flows.record(20, recorded)
    payload = pickle.loads(recorded.read_bytes())  # noqa: S301  # written just above
    (sent, answer) = payload["calls"][-1]["wire"][0]
    payload["calls"][-1]["wire"][0] = ((*sent[:3], sent[3] + b" "), answer)
    recorded.write_bytes(pickle.dumps(payload))
    with pytest.raises(SystemExit, match="differs"):
        adapter_flows.replay(recorded, 1)
