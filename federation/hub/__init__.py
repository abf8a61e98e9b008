"""The hub side of the controller: policies and templates watched on the hub, placement and
translation of each template into works in Postgres, and aggregated status written back."""
