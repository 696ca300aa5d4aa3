"""Many instances as one: channel ownership, liveness and engine load in a shared store."""

from .leases import Claim, Holder, Instance, Leases, StoreUnavailable

__all__ = ["Claim", "Holder", "Instance", "Leases", "StoreUnavailable"]
