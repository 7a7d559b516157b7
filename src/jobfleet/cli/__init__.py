"""The jobfleet command."""
