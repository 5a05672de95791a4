"""Interpreters over the graph: values, adjoints and tangents (engine), second order (hessian),
several outputs (jacobian), many points at once (batch), uncertainty propagation (uncertainty)."""
