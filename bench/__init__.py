"""Benchmarks: real `mailslot serve` over loopback, load from wrk."""
