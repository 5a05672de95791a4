"""The language: .expr text -> syntax tree with spans (parser, syntax, printer) -> computation graph (graph)."""
