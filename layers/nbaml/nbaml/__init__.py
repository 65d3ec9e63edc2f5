"""nbaml: the library every nbaml Lambda function shares.

Layout (each subpackage owns one stage of the model's life):
    games/       the clean game record, team names, defects, and the feeds (API-Basketball, file, generator)
    features     the seed's 19 pre-game features plus Elo, shared by training and serving
    storage/     the only modules that talk to AWS (S3 artifacts, DynamoDB tables, SSM parameters)
    training/    training, evaluation, gates, bundles and the retrain pipeline
    serving/     the FastAPI app, the pure-Python XGBoost evaluator, canary/shadow routing
    monitoring/  drift detection and reports
    promotion/   the canary's steps on live evidence: the sequential test and the rule that acts on it
    coldstart    the request path's cold start without the cyclic collector (predict and the authorizer)
"""

__version__ = "0.1.0"
