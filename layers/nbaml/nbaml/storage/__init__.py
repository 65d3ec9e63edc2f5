"""The only modules that talk to AWS: S3 artifacts, the three DynamoDB tables, SSM parameters."""
