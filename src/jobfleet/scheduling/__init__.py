"""Scheduling: pure algorithms (placement, dependencies) and the loop that runs them."""
