"""Kept so `from hw3.sentiment.errors import HW3Error` goes on working: it is `hw3.errors.HW3Error`."""

from ..errors import HW3Error

__all__ = ["HW3Error"]
