"""Local stand-ins for the outside systems, for tests and end-to-end tries."""

from .accoil_server import AcceptedCall, Fault, FaultPlan, LocalAccoil, RequestRecord

__all__ = ["AcceptedCall", "Fault", "FaultPlan", "LocalAccoil", "RequestRecord"]
