"""Parley's exception tree.

Every failure a client can see is a ``ParleyError``; each class knows its HTTP status and the
OpenAI error ``type``/``code`` so the API layer renders them without a lookup table::

    ParleyError
    ├── InvalidRequest            400 invalid_request_error
    │   ├── UnsupportedParameter  400 (param the provider cannot honour, drop_params off)
    │   └── RequestTooLarge       413
    ├── AuthenticationFailed      401 (no, bad, expired or revoked credential)
    ├── PermissionDenied          403 (authenticated, but not allowed this)
    ├── NotFound                  404 (an admin/API resource that does not exist)
    │   └── ModelNotFound         404 model_not_found
    ├── Conflict                  409 (a unique name or a lost race)
    ├── RateLimited               429 (a Parley limit; ``code`` names which; Retry-After)
    │   └── BudgetExceeded        429 budget_exceeded
    ├── TooManyAttempts           429 (login lockout; Retry-After)
    ├── ServiceUnavailable        503 (shared state down and the failure mode is closed)
    │   └── Overloaded            503 (queue full or queue wait timed out; Retry-After)
    ├── StoreError                500 (database failure; details only in logs)
    ├── StateError                (shared-state backend failure; callers decide open/closed)
    ├── ConfigError               (startup only; never rendered to a client)
    └── UpstreamError             the provider failed; status mirrors what it said
        ├── UpstreamStatusError   upstream answered 4xx/5xx (429 keeps Retry-After)
        ├── UpstreamTimeout       504
        ├── UpstreamUnavailable   502 (connection refused/reset, DNS)
        ├── UpstreamProtocolError 502 (malformed body or stream)
        └── AllDeploymentsFailed  every deployment tried failed; lists each attempt

Foreign exceptions (aiohttp, msgspec, ...) are translated at the boundary that caught them,
with ``raise ... from exc``; nothing from a library leaks above ``providers/``.
"""

from __future__ import annotations

from typing import ClassVar


class ParleyError(Exception):
    """Root of every error Parley raises on purpose."""

    status_code: int = 500
    error_type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = headers or {}

    def to_body(self) -> dict[str, object]:
        """The OpenAI error envelope for this error."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(ParleyError):
    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"


class RequestTooLarge(InvalidRequest):
    status_code = 413
    code = "request_too_large"


class AuthenticationFailed(ParleyError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(ParleyError):
    status_code = 403
    error_type = "permission_error"
    code = "forbidden"


class KeySuspended(PermissionDenied):
    """A key suspended by usage anomaly detection: the same answer on every instance,
    until an administrator reviews the anomaly."""

    code = "key_suspended"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "this API key is suspended: its usage looked anomalous, and an administrator"
            " must review it before it works again"
        )


class NotFound(ParleyError):
    status_code = 404
    error_type = "not_found_error"
    code = "not_found"


class ModelNotFound(NotFound):
    error_type = "invalid_request_error"
    code = "model_not_found"


class Conflict(ParleyError):
    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"


class RateLimited(ParleyError):
    """A Parley limit was hit; ``code`` says which (``rpm_exceeded:key`` style)."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, code=code, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


class BudgetExceeded(RateLimited):
    """A hard budget would be crossed; ``scope`` names whose (key, group, installation...)."""

    def __init__(self, message: str, *, code: str, retry_after: float, scope: str = "") -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.scope = scope


class CostCeilingExceeded(InvalidRequest):
    """The request's reservation is above a per-request ``max_cost_usd``: retrying the same
    request cannot help, lowering ``max_tokens`` (or the prompt) can."""

    code = "max_cost_exceeded"


class TooManyAttempts(RateLimited):
    pass


class ServiceUnavailable(ParleyError):
    status_code = 503
    error_type = "service_unavailable_error"
    code = "service_unavailable"


class Overloaded(ServiceUnavailable):
    """Admission control refused: the group's queue is full or the wait ran out."""

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, code=code, headers={"Retry-After": str(seconds)})


class StoreError(ParleyError):
    """The database failed. The message names the failure class, never the statement."""

    status_code = 500
    code = "store_error"


class StateError(ParleyError):
    """The shared-state backend (Redis) failed; limits and budgets apply their failure mode."""

    status_code = 503
    error_type = "service_unavailable_error"
    code = "state_unavailable"


class ConfigError(ParleyError):
    """The configuration is unusable; raised at startup or by ``parley check-config``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(errors))
        self.errors = errors


class UpstreamError(ParleyError):
    """The upstream provider failed; ``deployment`` names which one (never its secrets)."""

    status_code = 502
    error_type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        deployment: str = "",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.deployment = deployment


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an HTTP error; we keep its status and its words."""

    _TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        408: "timeout_error",
        413: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }

    def __init__(
        self,
        status: int,
        message: str,
        *,
        deployment: str = "",
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        headers = {"Retry-After": retry_after} if retry_after else None
        super().__init__(message, deployment=deployment, param=param, code=code, headers=headers)
        self.status_code = status
        self.error_type = error_type or self._TYPES.get(status, "upstream_error")
        self.retry_after = retry_after


class DeploymentBudgetSpent(UpstreamError):
    """A deployment's own budget has no room for this request: the router passes it over
    for the group's other deployments (not a fault of the deployment, not an attempt).
    When every deployment is spent, the ``AllDeploymentsFailed`` that results keeps this
    429 ``budget_exceeded`` and the soonest period reset as ``Retry-After``."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "budget_exceeded"

    def __init__(self, refusal: BudgetExceeded, *, deployment: str) -> None:
        super().__init__(refusal.message, deployment=deployment, headers=dict(refusal.headers))


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error_type = "timeout_error"
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    status_code = 502
    code = "upstream_unavailable"


class UpstreamProtocolError(UpstreamError):
    status_code = 502
    code = "upstream_protocol_error"


class AllDeploymentsFailed(UpstreamError):
    """Every attempt failed. Status, type and code are the attempts' own when they all
    agree (a 429 everywhere stays a 429 with the shortest Retry-After; a dead upstream stays
    ``upstream_unavailable``), else 503 ``all_deployments_failed``."""

    code = "all_deployments_failed"

    def __init__(
        self,
        model: str,
        attempts: list[tuple[str, UpstreamError]],
        *,
        deadline_exceeded: bool = False,
    ) -> None:
        self.attempts = attempts
        reasons = "; ".join(f"{label}: {_reason(err)}" for label, err in attempts)
        count = len(attempts)
        noun = "attempt" if count == 1 else "attempts"
        if deadline_exceeded:
            super().__init__(
                f"the request's deadline passed after {count} {noun} for model {model!r}: {reasons}"
            )
            self.status_code, self.error_type, self.code = 504, "timeout_error", "deadline_exceeded"
            return
        super().__init__(f"all {count} {noun} failed for model {model!r}: {reasons}")
        statuses = {err.status_code for _, err in attempts}
        self.status_code = statuses.pop() if len(statuses) == 1 else 503
        kinds = {(err.error_type, err.code) for _, err in attempts}
        if len(kinds) == 1:
            error_type, code = kinds.pop()
            self.error_type = error_type
            if code:
                self.code = code
        if self.status_code == 429:
            self.error_type = "rate_limit_error"
            waits = [
                float(err.headers["Retry-After"])
                for _, err in attempts
                if err.headers.get("Retry-After", "").replace(".", "", 1).isdigit()
            ]
            if waits:
                self.headers["Retry-After"] = str(max(1, int(min(waits) + 0.999)))
        elif self.status_code == 504:
            self.error_type = "timeout_error"


def _reason(err: UpstreamError) -> str:
    prefix = f"upstream {err.deployment} "
    text = err.message.removeprefix(prefix) if err.deployment else err.message
    return f"{err.status_code} {text}"
