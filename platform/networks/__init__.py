"""Networks owned by teams."""
