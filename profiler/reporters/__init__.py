"""Reporters: turn finished analysis data into output on a stream. They never re-read traces or
recompute analysis."""
