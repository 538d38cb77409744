"""A Salesforce REST emulator (HTTPS on loopback) seeded from scenario files, for the real client."""
