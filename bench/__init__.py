"""qloom benchmarks: long runs that print tables; never part of `make test`."""
