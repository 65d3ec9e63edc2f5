"""Training: the dataset from stored games, the XGBoost search, evaluation, gates, and the retrain pipeline.

These modules import numpy, scikit-learn and xgboost (the retrain function's ML layer and the command
line); the predict function never imports them.
"""
