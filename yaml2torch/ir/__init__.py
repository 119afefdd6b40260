"""The typed IR: what the spec means once lowered, with shapes, parameters and MACs."""
