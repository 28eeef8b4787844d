"""The error path of the whole server.

Every failure a client can see is an :class:`ApiError` carrying one of the documented
error codes; the app turns it into ``{"Response": {"Error": {...}, "RequestId": ...}}``.
"""

from __future__ import annotations


class ApiError(Exception):
    """A documented IAI error: ``code`` goes to ``Error.Code``, ``message`` to ``Error.Message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def missing(field: str) -> ApiError:
    return ApiError("MissingParameter", f"The request is missing a required parameter `{field}`.")


def invalid(message: str) -> ApiError:
    return ApiError("InvalidParameter", message)


def value(code: str, message: str) -> ApiError:
    """An ``InvalidParameterValue.<code>`` error."""
    return ApiError(f"InvalidParameterValue.{code}", message)


def failed(code: str, message: str) -> ApiError:
    """A ``FailedOperation.<code>`` error."""
    return ApiError(f"FailedOperation.{code}", message)


def too_large(message: str) -> ApiError:
    """``RequestSizeLimitExceeded``: the common code the docs list for an oversized request."""
    return ApiError("RequestSizeLimitExceeded", message)
