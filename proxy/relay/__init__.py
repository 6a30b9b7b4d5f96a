"""The relay: JSON-RPC framing and wire rules, the upstream process, the tool catalogue, the Gateway seam."""
