"""Demo stand-ins for lab services (tests and benchmarks only; not production servers)."""
