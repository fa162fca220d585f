"""Click commands, one module per family; imported lazily by ``bocli.cli.LazyGroup``."""
