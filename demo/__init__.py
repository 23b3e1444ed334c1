"""The demo: a local corpus of all six source types, its website, and the `make demo` run."""
