"""SMART App Launch: the scopes a token carries, and the Access value the repository applies for them."""
