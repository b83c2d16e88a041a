"""Tests of the library wing."""
