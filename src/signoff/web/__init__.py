"""The sidecar approval page (`signoff ui`): Starlette app, security, static files."""
