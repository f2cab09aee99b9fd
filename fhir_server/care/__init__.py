"""Care-coordination program features."""
