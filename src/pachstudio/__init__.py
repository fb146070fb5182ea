"""pachstudio: Label Studio with versioned Pachyderm storage."""

__version__ = "0.1.0"
