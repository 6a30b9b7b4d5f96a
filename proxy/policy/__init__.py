"""The policy side: the gateway that asks OPA, the decision contract, the OPA client, embedded OPA, audit."""
