"""All HTTP transport: the app factory, the JSON API, pages, and error mapping."""
