"""yaml2torch: compile YAML block specs into standalone PyTorch model files."""

__version__ = "0.1.0"
