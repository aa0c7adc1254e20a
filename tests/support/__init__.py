"""Test-only helpers shared by several test levels (importable as ``support``)."""
