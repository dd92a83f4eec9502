"""Research's backtests and sweeps: their SQL is ``repository``; the jobs that run them are
``hub.research.runner`` and ``hub.research.sweeps``."""
