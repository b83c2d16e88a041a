"""Tests of the reproduce wing."""
