"""Per-task label history: a task's annotations across its Targets' commits, as JSON and as a page."""
