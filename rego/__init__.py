"""Package data: the hand-written Rego (the gate) shipped with regogate."""
