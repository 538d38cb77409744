"""Shared shapes every part uses: the domain model, normalisation, the CRM port, logging."""
