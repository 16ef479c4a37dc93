"""Task flows at work: the executor of non-call tasks, their senders, export files
and manual moves (the flows themselves, pure, are engine/flow.py)."""
