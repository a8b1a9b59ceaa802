"""The chat product's back end: event-sourced conversations and their read models."""
