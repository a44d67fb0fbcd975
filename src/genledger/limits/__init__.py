"""Rate limits per key: requests and tokens per minute, in-process or shared through Redis."""

from genledger.limits.ratelimit import Decision, RateLimiter, RateLimits

__all__ = ["Decision", "RateLimiter", "RateLimits"]
