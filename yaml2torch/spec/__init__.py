"""Reading specs: YAML text -> located nodes -> typed, checked spec dataclasses."""
