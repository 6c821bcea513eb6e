"""Feature slices built on the SDK and NERV, one sub-package each.

Each imports its heavy dependencies lazily (they come with the package's extras),
so ``import inner_universe`` and the SDK stay light.

    chat        streaming chat through LiteLLM, provider routing, the model-call ledger
    delegation  durable tasks with leases and fencing, agent inboxes, workers
    workflow    DAG workflows over tasks; the local executor (graphlib + asyncio)
    knowledge   chunked, embedded documents; live hybrid search; perspectives per reader
"""
