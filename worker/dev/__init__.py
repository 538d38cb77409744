"""Development helpers: the local stack and the demo."""
