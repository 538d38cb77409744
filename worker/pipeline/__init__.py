"""The Celery pipeline: tasks, service, store, association, the CRM factory and the beat/sweep helpers."""
