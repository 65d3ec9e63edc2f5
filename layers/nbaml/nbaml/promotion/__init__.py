"""Promotion of candidates beyond the gates: the canary's steps decided on live evidence."""
