"""The repository: one module per table (or view family), each a set of async functions that take
an open asyncpg connection and run one statement where possible.

They know SQL and nothing else: retries, transactions, health and error translation are the
`Store`'s job (federation/store/store.py), so each function is also usable inside a caller's own
transaction (the tests use that to check that a call wrote nothing).
"""
