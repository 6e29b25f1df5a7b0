"""Named volumes owned by teams."""
