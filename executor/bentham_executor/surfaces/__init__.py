"""One module per SDK: each asks a `Question` over a `Connection` and gives an `Answer` or raises `SurfaceFailure`."""
