"""callmatch: finished calls linked to the right CRM records."""

__version__ = "0.1.0"
