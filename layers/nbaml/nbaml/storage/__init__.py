"""The only modules that talk to AWS: S3 artifacts, the DynamoDB tables (and the retrain requests' outcomes), SSM
parameters, the retrain queue."""
