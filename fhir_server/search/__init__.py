"""Pure search: query string -> SearchQuery, resource -> index rows (search.html)."""
