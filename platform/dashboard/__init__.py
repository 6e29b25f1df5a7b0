"""The browser dashboard: HTML views, live updates and the web terminal."""
