"""What every app uses and nothing domain-specific: encryption and the blind index,
masking of personal data, the request's context, admin bases, the outbox.

``core`` imports no other app of ours (import-linter enforces it).
"""
