"""Cloud GPU hosts: the AWS API through the official SDK (boto3), and the facts of instance types."""
