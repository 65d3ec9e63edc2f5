"""Serving: the FastAPI app behind API Gateway, the hot-swapped models, canary/shadow routing, auth.

Nothing here imports numpy, pandas, scikit-learn or xgboost: the predict function stays lean, and the
model is evaluated by the pure-Python nbaml.forest from XGBoost's own JSON.
"""
