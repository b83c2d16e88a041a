"""Tests of the project wing."""
