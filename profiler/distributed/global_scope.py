"""Global scope on Ray: the single-process global-scope figures, computed by partitions and a shuffle
(docs/scale.md, "Global scope", which carries the argument why every figure is the same).

Every step's reuse in the global scope is a function of two things over the earlier steps (in the
one order `profiler.trace.model.ordered_llm_steps`): the longest prefix its prompt P_i shares with
an earlier S_j = P_j + O_j (and the earliest such j), and for each `min_repeat`-token window of P_i
the earliest step whose S_j contains it. The plan computes both without one process seeing all
tokens:

1. `prepare_chunk` (one task per chunk of consecutive steps): tokenize and hash each step with the
   one hash scheme (`profiler.prefix.hashing`); keep its window hashes in the object store, send its
   tokens to one of B partition buckets by its first block's hash, and its first block (the head)
   to the driver.
2. `partition_prefixes` (one task per partition bucket): one partition per distinct first block,
   steps in the global order, the single-process `ReuseIndex` over each: exact for every prefix of at
   least one block, because every S_j sharing a whole first block with P_i is in P_i's partition.
   The driver runs the same index over the heads (`short_prefixes`, at most one block a step): exact
   for every prefix shorter than a block, whichever partition it came from.
3. `send_windows` (one task per chunk): each step's windows outside its reused prefix (the ones the
   single process inserts too), to W window buckets by hash.
4. `earliest_windows` (one task per window bucket): the earliest step of every window hash, answered
   for every window the chunks sent (a reduce by minimum).
5. `finish_chunk` (one task per chunk): the repeated spans from the window answers with the
   single-process rule (`profiler.reuse.cover_windows`), and the step metrics.

Content-free (hashes level) steps, whose cost is per block rather than per token, are analysed on the
driver as the single process does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from profiler.trace.model import Step

if TYPE_CHECKING:
    from profiler.analysis import Analysis, AnalysisOptions, StepMetrics
    from profiler.pricing import PriceTable
    from profiler.trace.model import Trace

_NO_WINDOWS = 1 << 62  # a window longer than any sequence: an index that holds prefixes only
_TOKEN_LEVELS = ("text", "tokens")


def _block() -> int:
    from profiler.reuse import _G

    return _G


@dataclass(frozen=True)
class _Local:
    """What a chunk keeps in the object store for its later tasks: per token-level step (in order)
    its figures, and the window hashes of every S_i (step i's are [offsets[i], offsets[i+1]))."""

    ordinals: tuple[int, ...]
    namespaces: tuple[str, ...]
    prompt_lens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    windows: np.ndarray
    window_offsets: np.ndarray


@dataclass(frozen=True)
class _Sent:
    """Which windows a chunk sent (step i's from `firsts[i]` on) and in what order (by bucket)."""

    firsts: tuple[int, ...]
    offsets: np.ndarray  # step i's sent windows are [offsets[i], offsets[i+1]) before sorting
    order: np.ndarray


def _bucket(hashes: np.ndarray, buckets: int) -> np.ndarray:
    # Splitmix-mixed hashes: the low bits are as good as any.
    return (hashes % np.uint64(buckets)).astype(np.int64)


def prepare_chunk(steps: Sequence[Step], ordinals: Sequence[int], min_repeat: int,
                  partition_buckets: int) -> tuple[Any, ...]:
    """Stage 1. Returns (local, (heads, models tokenized approximately), *partition pieces);
    `local` stays in the object store for the chunk's later tasks."""
    from profiler.prefix import sequence_hashes
    from profiler.prefix.hashing import Powers
    from profiler.reuse import namespace_salt
    from profiler.analysis import token_output_count
    from profiler.tokens import StepTokenizer

    g = _block()
    tok = StepTokenizer()
    powers = Powers()
    kept, namespaces, prompt_lens, outputs = [], [], [], []
    window_parts, offsets = [], [0]
    heads = []
    parts: list[list[tuple[int, int, int, np.ndarray, int]]] = [[] for _ in range(partition_buckets)]
    for ordinal, step in zip(ordinals, steps):
        if step.prompt.level not in _TOKEN_LEVELS:
            continue
        prompt = tok.prompt_tokens(step)
        output = tok.output_tokens(step)
        namespace = tok.namespace(step)
        salt = namespace_salt(namespace)
        seq = np.concatenate([prompt, output]) if output.size else prompt
        h = sequence_hashes(seq, salt, min_repeat, powers)
        kept.append(ordinal)
        namespaces.append(namespace)
        prompt_lens.append(int(prompt.size))
        outputs.append(token_output_count(step, output))
        window_parts.append(h.window)
        offsets.append(offsets[-1] + int(h.window.size))
        heads.append((ordinal, np.asarray(seq[:g]), salt, int(prompt.size)))
        if seq.size >= g:
            key = int(h.prefix[g - 1])
            parts[key % partition_buckets].append((key, ordinal, int(prompt.size), np.asarray(seq), salt))
    windows = np.concatenate(window_parts) if window_parts else np.zeros(0, dtype=np.uint64)
    local = _Local(tuple(kept), tuple(namespaces), tuple(prompt_lens), tuple(outputs), windows,
                   np.asarray(offsets, dtype=np.int64))
    return (local, (heads, frozenset(tok.approximate_models)), *parts)


def send_windows(local: _Local, prefixes: dict[int, tuple[int, int | None]], min_repeat: int,
                 buckets: int) -> tuple[Any, ...]:
    """Stage 3. Each step's windows that do not lie inside its reused prefix (those start at
    max(0, prefix - min_repeat + 1)), with the step, split into `buckets` by hash. A window inside
    the prefix is in the prefix's source too, so the earliest holder of every window still sends it.
    Returns (sent, *pieces)."""
    firsts = tuple(max(0, prefixes[o][0] - min_repeat + 1) for o in local.ordinals)
    parts, owners, offsets = [], [], [0]
    for i, (ordinal, first) in enumerate(zip(local.ordinals, firsts)):
        lo, hi = int(local.window_offsets[i]), int(local.window_offsets[i + 1])
        part = local.windows[min(lo + first, hi):hi]
        parts.append(part)
        owners.append(np.full(part.size, ordinal, dtype=np.int64))
        offsets.append(offsets[-1] + int(part.size))
    windows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    bucket = _bucket(windows, buckets)
    order = np.argsort(bucket, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(bucket, minlength=buckets))])
    sorted_w, sorted_o = windows[order], owner[order]
    pieces = [(sorted_w[bounds[b]:bounds[b + 1]], sorted_o[bounds[b]:bounds[b + 1]])
              for b in range(buckets)]
    return (_Sent(firsts, np.asarray(offsets, dtype=np.int64), order), *pieces)


def earliest_windows(*pieces: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Stage 4. For every (window hash, step) a chunk sent, the earliest step holding that hash;
    one answer array per chunk, in the order it was sent."""
    sizes = [p[0].size for p in pieces]
    hashes = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, dtype=np.uint64)
    owners = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, dtype=np.int64)
    answers = np.empty(owners.size, dtype=np.int64)
    if owners.size:
        order = np.lexsort((owners, hashes))  # by hash, then earliest step first
        sh = hashes[order]
        starts = np.flatnonzero(np.concatenate([[True], sh[1:] != sh[:-1]]))
        counts = np.diff(np.concatenate([starts, [sh.size]]))
        answers[order] = np.repeat(owners[order][starts], counts)
    out = tuple(np.split(answers, np.cumsum(sizes)[:-1])) if sizes else ()
    return out if len(out) != 1 else out[0]  # type: ignore[return-value]


def partition_prefixes(*pieces: list[tuple[int, int, int, np.ndarray, int]]) -> dict[int, tuple[int, int | None]]:
    """Stage 2. Per partition (steps sharing a first block), in the global order, the single-process
    index: (prefix, source) of every step whose prompt holds at least one block."""
    from profiler.prefix.hashing import Powers
    from profiler.reuse import ReuseIndex

    g = _block()
    items = sorted((item for piece in pieces for item in piece), key=lambda it: (it[0], it[1]))
    powers = Powers()
    out: dict[int, tuple[int, int | None]] = {}
    index, current = None, None
    for key, ordinal, prompt_len, seq, salt in items:
        if key != current:
            index, current = ReuseIndex(_NO_WINDOWS, powers), key
        h = index.hashes(seq, salt)
        match = index.match(prompt_len, h)
        index.insert(h, ordinal, match)
        if prompt_len >= g:
            out[ordinal] = (match.prefix, match.prefix_source)
    return out


def short_prefixes(heads: Sequence[tuple[int, np.ndarray, int, int]]) -> dict[int, tuple[int, int | None]]:
    """Stage 2 (driver). The same index over every step's first block, in the global order: the exact
    prefix wherever it is shorter than a block."""
    from profiler.reuse import ReuseIndex

    g = _block()
    index = ReuseIndex(_NO_WINDOWS)
    out: dict[int, tuple[int, int | None]] = {}
    for ordinal, head, salt, prompt_len in sorted(heads, key=lambda h: h[0]):
        h = index.hashes(head, salt)
        match = index.match(min(prompt_len, g), h)
        index.insert(h, ordinal, match)
        out[ordinal] = (match.prefix, match.prefix_source)
    return out


def finish_chunk(local: _Local, sent_meta: _Sent, steps: Sequence[Step], options: "AnalysisOptions",
                 ordinal_ids: Sequence[tuple[str, str]], prefixes: dict[int, tuple[int, int | None]],
                 *answers: np.ndarray) -> list["StepMetrics"]:
    """Stage 5. The metrics of the chunk's token-level steps (`steps` by position in `local`)."""
    from profiler.analysis import _sources, step_metrics
    from profiler.reuse import cover_windows

    k = options.min_repeat
    ids = list(ordinal_ids)
    sent = np.concatenate(answers) if answers else np.zeros(0, dtype=np.int64)
    earliest = np.empty_like(sent)
    earliest[sent_meta.order] = sent  # back to the order the windows were cut in
    out = []
    for i, (ordinal, step) in enumerate(zip(local.ordinals, steps)):
        prompt_len = local.prompt_lens[i]
        prefix, prefix_source = prefixes[ordinal]
        sources = np.full(prompt_len, -1, dtype=np.int64)
        if prefix:
            sources[:prefix] = prefix_source
        covered = np.zeros(prompt_len, dtype=bool)
        first, last = sent_meta.firsts[i], prompt_len - k
        if last >= first:
            lo = int(sent_meta.offsets[i])  # the step's sent windows start at `first`
            src = earliest[lo: lo + last - first + 1].copy()
            src[src >= ordinal] = -1  # only strictly earlier steps count
            covered = cover_windows(prompt_len, prefix, k, first, src, sources)
        out.append(step_metrics(
            step, options, level=step.prompt.level, namespace=local.namespaces[i],
            input_tokens=prompt_len, output_tokens=local.output_tokens[i], prefix=prefix,
            repeated=int(covered.sum()),
            sources=_sources(prefix_source, prefix, sources, covered, ids)))
    return out


def analyze_global_scope(traces: "Sequence[Trace]", options: "AnalysisOptions", *,
                         prices: "PriceTable | None" = None, progress: bool | None = None,
                         chunk_steps: int | None = None) -> "Analysis":
    """The driver: order, plan, run the stages, assemble as the single process does."""
    from profiler.analysis import _analyze_step, _finish, _Powers, _Scope
    from profiler.distributed.cluster import cluster_cpus, require_ray
    from profiler.distributed.progress import progress_bar, task_result
    from profiler.tokens import StepTokenizer
    from profiler.trace.model import ordered_llm_steps

    ray = require_ray()
    trace_list = list(traces)
    ordered = ordered_llm_steps(trace_list)
    ordinal_ids = [(s.run_id, s.step_id) for _, s in ordered]
    workers = cluster_cpus()
    buckets = workers
    size = chunk_steps or max(1, -(-len(ordered) // (2 * workers)))
    chunks = [list(range(lo, min(lo + size, len(ordered)))) for lo in range(0, len(ordered), size)]

    def remote(fn: Any, returns: int = 1) -> Any:
        return ray.remote(num_cpus=1, max_retries=0)(fn).options(num_returns=returns)

    # A task with n returns gives a list of n refs, except n == 1 (one ref).
    def as_list(refs: Any) -> list[Any]:
        return refs if isinstance(refs, list) else [refs]

    prepare, send = remote(prepare_chunk, 2 + buckets), remote(send_windows, 1 + buckets)
    prep_refs = [as_list(prepare.remote([ordered[o][1] for o in chunk], chunk, options.min_repeat, buckets))
                 for chunk in chunks]
    part = remote(partition_prefixes)
    part_refs = [part.remote(*[refs[2 + b] for refs in prep_refs]) for b in range(buckets)]

    with progress_bar("analyse global (ray)", 3 * len(chunks) + buckets, progress) as advance:
        heads, approx = [], set()
        for refs in prep_refs:
            chunk_heads, chunk_approx = task_result(ray, refs[1])
            heads.extend(chunk_heads)
            approx |= chunk_approx
            advance(1)
        prefixes = short_prefixes(heads)
        block = _block()
        for ref in part_refs:
            for ordinal, found in task_result(ray, ref).items():
                if prefixes[ordinal][0] == block:  # a whole first block is shared: its partition knows
                    prefixes[ordinal] = found
            advance(1)
        token_ordinals = [[o for o in chunk if ordered[o][1].prompt.level in _TOKEN_LEVELS] for chunk in chunks]
        chunk_prefixes = [ray.put({o: prefixes[o] for o in ords}) for ords in token_ordinals]
        sent_refs = [as_list(send.remote(refs[0], pre, options.min_repeat, buckets))
                     for refs, pre in zip(prep_refs, chunk_prefixes)]
        reduce = remote(earliest_windows, len(chunks))
        answer_refs = [as_list(reduce.remote(*[refs[1 + b] for refs in sent_refs])) for b in range(buckets)]
        finish = remote(finish_chunk)
        opts_ref, ids_ref = ray.put(options), ray.put(ordinal_ids)
        finish_refs = [finish.remote(refs[0], sent[0], [ordered[o][1] for o in ords], opts_ref, ids_ref, pre,
                                     *[answer_refs[b][c] for b in range(buckets)])
                       for c, (refs, sent, ords, pre) in enumerate(zip(prep_refs, sent_refs, token_ordinals,
                                                                       chunk_prefixes))]
        token_metrics: list[StepMetrics] = []
        for ref in finish_refs:
            token_metrics.extend(task_result(ray, ref))
            advance(2)

    # Token-level metrics come back in the global order; content-free and content-less steps are
    # analysed here, in the same order, exactly as the single process does.
    tok = StepTokenizer()
    tok.approximate_models |= approx
    state = _Scope(options.min_repeat, _Powers())
    no_content: list[str] = []
    token_iter = iter(token_metrics)
    by_ordinal: dict[int, StepMetrics] = {}
    for ordinal, (ti, step) in enumerate(ordered):
        if step.prompt.level in _TOKEN_LEVELS:
            by_ordinal[ordinal] = next(token_iter)
        else:
            by_ordinal[ordinal] = _analyze_step(step, ordinal, state, tok, options, ordinal_ids, no_content)
    keyed = {(ti, step.run_id, step.step_id): by_ordinal[o] for o, (ti, step) in enumerate(ordered)}
    warnings = [w for t in trace_list for w in t.warnings]
    analysis = _finish(trace_list, ordered, keyed, options, warnings, no_content, tok)
    if prices is not None:
        from profiler.cost import apply_costs

        analysis = apply_costs(analysis, trace_list, prices)
    return analysis
