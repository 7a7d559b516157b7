"""jobfleet benchmarks: `python -m bench.submit`, `bench.latency`, `bench.drain` (see README.md)."""
