"""The prefix core shared by the analyzer, the provider and engine cache simulators, diagnosis and
replay: one hash scheme (`hashing`), one prefix index with pluggable eviction (`index`). The one step
order is `profiler.trace.model.ordered_llm_steps`; the one model-shape table is
`profiler.cache_sim.presets.KV_PRESETS`.
"""

from profiler.prefix.hashing import (
    BlockHash,
    Powers,
    SequenceHashes,
    block_hashes,
    chained_id_block_hashes_many,
    id_block_hashes,
    namespace_salt,
    prefix_hashes,
    sequence_hashes,
)
from profiler.prefix.index import POLICIES, EvictionPolicy, FIFOPolicy, LRUPolicy, PrefixIndex, make_policy

__all__ = ["BlockHash", "EvictionPolicy", "FIFOPolicy", "LRUPolicy", "POLICIES", "Powers", "PrefixIndex",
           "SequenceHashes", "block_hashes", "chained_id_block_hashes_many", "id_block_hashes", "make_policy", "namespace_salt",
           "prefix_hashes", "sequence_hashes"]
