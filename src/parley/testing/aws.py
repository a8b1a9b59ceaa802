"""What the fake Bedrock needs of AWS itself: checking a SigV4 signature as AWS does, and
writing AWS event-stream frames.

The check recomputes the signature with botocore's ``SigV4Auth`` (the SDK's own canonical
request and signing key) from the request as it arrived: its raw path and query, the
headers named in ``SignedHeaders``, the body, and the ``X-Amz-Date`` it carries, for the
credentials the fake knows (``FAKE_AWS_CREDENTIALS``). A request without a signature, with
an unknown key, a scope for another region, date or service, a stale date, a session token
that is missing or wrong, or a signature that does not match is refused with the AWS error
a real endpoint sends (all 403).

The frames are encoded here (prelude: total and headers length, its CRC32; string headers;
payload; CRC32 of the whole): Parley reads them with botocore's parser, which checks both
CRCs, so a framing mistake on either side fails the tests.
"""

from __future__ import annotations

import binascii
import datetime
import hmac
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

FAKE_AWS_REGION = "us-east-1"
FAKE_AWS_ACCESS_KEY_ID = "AKIAPARLEYFAKE000001"
FAKE_AWS_SECRET_ACCESS_KEY = "fake/aws+secret+key+parley+0123456789abcd"
FAKE_AWS_SESSION_KEY_ID = "ASIAPARLEYFAKE000002"
FAKE_AWS_SESSION_SECRET = "fake/aws+session+secret+parley+0123456789"
FAKE_AWS_SESSION_TOKEN = "FwoGZXIvYXdzEFAKE//session/token/for/parley/tests=="
FAKE_AWS_CREDENTIALS: dict[str, tuple[str, str | None]] = {
    FAKE_AWS_ACCESS_KEY_ID: (FAKE_AWS_SECRET_ACCESS_KEY, None),
    FAKE_AWS_SESSION_KEY_ID: (FAKE_AWS_SESSION_SECRET, FAKE_AWS_SESSION_TOKEN),
}
"""Access key id -> (secret, session token): what the fake accepts."""

MAX_CLOCK_SKEW = datetime.timedelta(minutes=5)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class Refusal:
    """An AWS authentication failure: its HTTP status, error name and message."""

    status: int
    error: str
    message: str


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request as the server received it (path and query undecoded)."""

    method: str
    host: str
    raw_path: str
    headers: Mapping[str, str]
    body: bytes


def verify_sigv4(
    request: Incoming,
    *,
    region: str = FAKE_AWS_REGION,
    service: str = "bedrock",
    credentials: Mapping[str, tuple[str, str | None]] = FAKE_AWS_CREDENTIALS,
    now: datetime.datetime | None = None,
) -> Refusal | None:
    """None when the request is signed as AWS requires, else why not."""
    header = request.headers.get("Authorization")
    if not header:
        return Refusal(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    match = _AUTH.match(header.strip())
    if match is None:
        return Refusal(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature'.",
        )
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return Refusal(403, "IncompleteSignatureException", "Credential is malformed.")
    key_id, day, scope_region, scope_service, _ = parts
    known = credentials.get(key_id)
    if known is None:
        return Refusal(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    secret, token = known
    amz_date = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=datetime.UTC)
    except ValueError:
        return Refusal(403, "IncompleteSignatureException", "X-Amz-Date is missing or malformed.")
    current = now or datetime.datetime.now(datetime.UTC)
    if abs(current - signed_at) > MAX_CLOCK_SKEW:
        return Refusal(403, "InvalidSignatureException", f"Signature expired: {amz_date}.")
    if day != amz_date[:8] or scope_region != region or scope_service != service:
        return Refusal(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service: {day}/{region}/{service}.",
        )
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return Refusal(403, "InvalidSignatureException", "host and x-amz-date must be signed.")
    if token is not None:
        sent = request.headers.get("X-Amz-Security-Token")
        if (
            sent is None
            or not hmac.compare_digest(sent, token)
            or "x-amz-security-token" not in signed
        ):
            return Refusal(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
    expected = _signature(
        request,
        signed=signed,
        amz_date=amz_date,
        creds=(key_id, secret, token),
        region=region,
        service=service,
    )
    if expected is None or not hmac.compare_digest(expected, match["signature"]):
        return Refusal(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return None


def _signature(
    request: Incoming,
    *,
    signed: list[str],
    amz_date: str,
    creds: tuple[str, str, str | None],
    region: str,
    service: str,
) -> str | None:
    headers: dict[str, str] = {}
    for name in signed:
        value = request.host if name == "host" else request.headers.get(name)
        if value is None:
            return None  # a header said to be signed is not there
        headers[name] = value
    rebuilt = AWSRequest(
        method=request.method,
        url=f"http://{request.host}{request.raw_path}",
        data=request.body,
        headers=headers,
    )
    rebuilt.context["timestamp"] = amz_date
    auth = SigV4Auth(ReadOnlyCredentials(*creds), service, region)
    canonical = auth.canonical_request(rebuilt)
    return auth.signature(auth.string_to_sign(rebuilt, canonical), rebuilt)


# --- event-stream encoding ---------------------------------------------------------------

_STRING = 7  # the header value type for UTF-8 strings


def event_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message with string headers."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack("!B", len(raw_name)) + raw_name
        encoded += struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    head = prelude + struct.pack("!I", binascii.crc32(prelude))
    message = head + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message))


def corrupt(frame: bytes) -> bytes:
    """The same frame with one payload byte flipped: its message CRC no longer matches."""
    middle = len(frame) - 5
    return frame[:middle] + bytes([frame[middle] ^ 0xFF]) + frame[middle + 1 :]
