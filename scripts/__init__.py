"""Entry points behind `make demo` and `make bench`."""
