"""The benchmarks of `make bench`: a driver (run.py) and one module per measurement (see README.md)."""
