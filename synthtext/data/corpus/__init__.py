"""A generated corpus in CREMA-D's exact format: real photos animated by speech and emotion."""
