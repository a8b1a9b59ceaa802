"""The event bus: in process by default, NATS JetStream when ``PARLEY_NATS_URL`` is set."""

from parley.bus.base import Bus, BusError, Handler, Subjects, Subscription

__all__ = ["Bus", "BusError", "Handler", "Subjects", "Subscription"]
