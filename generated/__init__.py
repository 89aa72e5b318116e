"""Generated code (placeholder until the first `creality derive`)."""
