"""Data: generators and loaders, each a module of pure functions."""
