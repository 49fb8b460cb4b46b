"""The reference executor: one attempt of one cell of a Bentham study, asked of an API surface.

Run once per attempt (`bentham-executor`, or `python -m bentham_executor`) from the `BENTHAM_*`
environment the operator gives each Job (docs/executor.md). It asks the cell's surface its query
through the surface's official SDK, stores the evidence its `evidenceLevel` asks for, and writes
its result, the operator's own model (`bentham.api.results`), to the termination message.
"""

__all__: list[str] = []
