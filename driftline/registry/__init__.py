"""Model registry (DynamoDB) and content-verified artifacts (S3).

Both modules use only the standard library and boto3, because the serving Lambda imports them.
"""
