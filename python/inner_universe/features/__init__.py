"""Feature slices built on the SDK and the NERV components, one sub-package each."""
