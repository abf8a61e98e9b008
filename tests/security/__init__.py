"""Attacks on the trust boundaries (issue 10), each performed against the real fleet."""
