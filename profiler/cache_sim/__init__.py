"""Cache simulators: what a serving engine's KV cache (`engine`) would have reused of a trace, given a
finite capacity, a block size and an eviction policy. Pure Python: no GPU needed."""
