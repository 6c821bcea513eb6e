"""Tests of the feature slices."""
