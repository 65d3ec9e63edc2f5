"""Feeds: API-Basketball (live), the historical CSV file, and the embedded synthetic league."""
