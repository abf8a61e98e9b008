"""The checks a policy must pass beyond its schema, judged from the policy (and what the hub
holds), before anything is translated: one implementation, used by the admission webhook and
by ``federation plan``, so both refuse the same policies in the same words."""

from federation.validation.identity import identity_problems

__all__ = ["identity_problems"]
