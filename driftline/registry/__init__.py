"""Model registry (DynamoDB) and content-verified artifacts (S3).

Both modules use only the standard library and botocore (clients from ``driftline.aws``), because the
serving Lambda imports them.
"""
