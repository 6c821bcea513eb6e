"""Feature slices built on the Inner Universe: one sub-package per feature."""
