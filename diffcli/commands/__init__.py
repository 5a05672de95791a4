"""What the commands compute on top of a Program: gradient checks, fits, derivations, points files in."""
