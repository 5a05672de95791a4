"""Results -> what people and programs read: tables and JSON, diagrams, plots, generated code,
derivations, diagnostics, and the files they are written to."""
