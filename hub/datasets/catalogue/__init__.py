"""The datasets catalogue: its SQL is ``repository``; the decisions are ``DatasetService``'s."""
