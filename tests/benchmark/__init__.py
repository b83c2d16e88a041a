"""Tests of the benchmark wing."""
