"""Model loading, the one log-prob function, and generation."""
