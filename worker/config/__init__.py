"""The documents: scenario, tenants file, settings, their published schemas."""
