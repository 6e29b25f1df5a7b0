"""REST API of images."""
