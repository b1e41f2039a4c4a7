"""The `ctxprof` command line: a thin shell over the library (see `profiler.cli.app`)."""
