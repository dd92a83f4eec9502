"""The signal rules (hub/signals/decide.py) apart from I/O: when a view becomes a signal, when
an active signal is filled or cancelled, and how a signal is sized."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from hub.signals.decide import Active, Rules, judge, quantity
from hub.signals.documents import signal_document

DAY = 86_400 * 10**9


def _docs() -> Any:
    count = iter(range(1000))
    return lambda fields: {"signal_id": f"s{next(count)}", **fields}


def test_an_active_signal_fills_after_its_horizon_and_the_same_view_comes_again() -> None:
    rules = Rules(entry=0.6, exit=0.4, horizon=3, allowed_hours=None, risk_profile="Balanced")
    close = np.array([10.0, 11, 12, 13, 14, 15, 16])
    ts = np.arange(close.size, dtype=np.int64) * DAY
    p = np.full(close.size, 0.7)
    out = judge(rules, ts, close, np.zeros(close.size), p, 0, None, 0.02, _docs())
    kinds = [(s[0], s[1]["signal_id"]) + ((s[2],) if s[0] == "ended" else ()) for s in out.steps]
    assert kinds == [
        ("emitted", "s0"),
        ("ended", "s0", "filled"),
        ("emitted", "s1"),
        ("ended", "s1", "filled"),
        ("emitted", "s2"),
    ]
    filled = out.steps[1]
    assert filled[3] == pytest.approx(13 / 10 - 1)  # three bars after its bar
    assert out.active is not None and out.active.age == 0


def test_a_view_the_other_way_cancels_and_hours_outside_are_skipped() -> None:
    rules = Rules(
        entry=0.6, exit=0.4, horizon=10, allowed_hours=frozenset({9}), risk_profile="Conservative"
    )
    close = np.array([100.0, 90, 80, 70])
    ts = np.arange(4, dtype=np.int64) * DAY
    hours = np.array([9, 10, 9, 9])
    p = np.array([0.8, 0.1, 0.5, 0.2])  # the 0.1 falls in hour 10: skipped
    held = Active({"signal_id": "old", "action": "SELL", "price": 120.0}, -DAY, 0)
    out = judge(rules, ts, close, hours, p, 0, held, 0.05, _docs())
    assert out.steps[0][:3] == ("ended", held.doc, "cancelled")
    assert out.steps[0][3] == pytest.approx(-(100 / 120 - 1))
    buy = out.steps[1][1]
    assert buy["action"] == "BUY" and buy["confidence"] == pytest.approx(0.8)
    assert buy["expected_return"] == pytest.approx(0.6 * 0.05)
    assert buy["quantity"] == 100  # 10,000 at 100
    sell = out.steps[3][1]
    assert out.steps[2][:3] == ("ended", buy, "cancelled")
    assert sell["action"] == "SELL" and sell["bar_ts"] == 3 * DAY
    assert sell["confidence"] == pytest.approx(0.8)


def test_a_signal_on_an_expensive_ticker_is_a_fraction() -> None:
    assert quantity(60_000.0, "Balanced") == pytest.approx(0.416666)
    assert quantity(float("nan"), "Balanced") == 0.0


def test_a_whole_quantity_is_a_json_integer_as_the_seed_shows() -> None:
    def doc(units: float) -> dict[str, Any]:
        return signal_document(
            signal_id="s", model_id="m", ticker="AAPL", timeframe="1d", action="BUY",
            quantity=units, price=185.5, bar_ts=0, status="active", confidence=0.85,
            expected_return=0.025,
        )  # fmt: skip

    whole = orjson.loads(orjson.dumps(doc(quantity(100.0, "Conservative"))))
    assert whole["quantity"] == 100 and type(whole["quantity"]) is int  # not 100.0
    assert doc(quantity(60_000.0, "Balanced"))["quantity"] == pytest.approx(0.416666)
