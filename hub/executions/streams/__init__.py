"""What an execution writes as it runs (events, trades, equity, checkpoints, downsampled
curves): its SQL is ``repository``; the writer is ``hub.executions.runs.RunWriter``."""
