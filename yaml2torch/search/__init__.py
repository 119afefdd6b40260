"""The architecture search: search-space YAML -> Optuna study -> trained, scored, kept specs."""
