"""The engine's benchmarks, each beside its anchor in the same run (issue 4, item 10):

  (a) one SMA-crossover backtest on 1,000,000 bars vs vectorbt ``from_signals`` (+ metrics)
  (b) a 100-combination fast/slow sweep on 100,000 bars vs vectorbt's broadcast sweep
  (c) ILP encoding of 1,000,000 rows vs the QuestDB client's ``Buffer.dataframe`` (text, v1)
  (d) LTTB from 10,000,000 points to 2,000 vs tsdownsample

    python bench/engine.py [backtest] [ilp] [lttb]

Compile time is reported apart from run time by each part. The parts also run alone:
``bench/engine_backtest.py``, ``bench/engine_ilp.py``, ``bench/engine_lttb.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = {"backtest": "engine_backtest", "ilp": "engine_ilp", "lttb": "engine_lttb"}


def load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(selected: list[str]) -> None:
    for part in selected or list(PARTS):
        if part not in PARTS:
            raise SystemExit(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
        print(f"\n===== {part} =====", flush=True)
        load(PARTS[part]).main()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main(sys.argv[1:])
