"""The HTTP receiver: verified provider webhooks in, "call ended" events on the Celery queue out."""
