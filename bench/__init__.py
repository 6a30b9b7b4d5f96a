"""regogate's benchmark harness: ``python -m bench.run`` measures direct vs. embedded OPA vs. external OPA."""
