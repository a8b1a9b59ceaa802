"""The messages Parley sends, each as plain text and HTML from one set of inputs.

Templates are ``string.Template`` strings (no logic, nothing to evaluate); every value is
HTML-escaped before it enters the HTML part, so a user's name cannot inject markup. The
plain-text part comes first: a client that shows only one part shows the safe one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from string import Template


@dataclass(frozen=True, slots=True)
class MailTemplate:
    subject: str
    text: str
    html: str


_FOOT_TEXT = "If you did not ask for this, ignore this message; nothing changes.\n"
_FOOT_HTML = "<p>If you did not ask for this, ignore this message; nothing changes.</p>"

TEMPLATES: dict[str, MailTemplate] = {
    "password_reset": MailTemplate(
        subject="Reset your Parley password",
        text=(
            "Hello $name,\n\n"
            "Someone (hopefully you) asked to reset the password of your Parley account.\n"
            "Open this link within $minutes minutes to choose a new password:\n\n"
            "$link\n\n"
            "The link works once. Resetting signs you out everywhere.\n\n" + _FOOT_TEXT
        ),
        html=(
            "<p>Hello $name,</p>"
            "<p>Someone (hopefully you) asked to reset the password of your Parley account. "
            "Open this link within $minutes minutes to choose a new password:</p>"
            '<p><a href="$link">Choose a new password</a></p>'
            "<p>The link works once. Resetting signs you out everywhere.</p>" + _FOOT_HTML
        ),
    ),
    "verify_email": MailTemplate(
        subject="Confirm your email address for Parley",
        text=(
            "Hello $name,\n\n"
            "Confirm that $email is your address by opening this link within $hours hours:\n\n"
            "$link\n\n" + _FOOT_TEXT
        ),
        html=(
            "<p>Hello $name,</p>"
            "<p>Confirm that $email is your address by opening this link within $hours hours:</p>"
            '<p><a href="$link">Confirm my address</a></p>' + _FOOT_HTML
        ),
    ),
    # --- risk-based step-up (identity/login_risk.py) ---
    "login_code": MailTemplate(
        subject="Your Parley sign-in code",
        text=(
            "Hello $name,\n\n"
            "A sign-in to your Parley account needs one more check. Enter this code within "
            "$minutes minutes to finish signing in:\n\n"
            "$code\n\n"
            "The code works once. If you are not signing in, someone knows your password: "
            "change it now.\n"
        ),
        html=(
            "<p>Hello $name,</p>"
            "<p>A sign-in to your Parley account needs one more check. Enter this code within "
            "$minutes minutes to finish signing in:</p>"
            "<p><strong>$code</strong></p>"
            "<p>The code works once. If you are not signing in, someone knows your password: "
            "change it now.</p>"
        ),
    ),
    "login_denied": MailTemplate(
        subject="A sign-in to your Parley account was refused",
        text=(
            "Hello $name,\n\n"
            "At $time someone signed in to your Parley account with your password, from "
            "$ip (country: $country, network: $network). It looked risky (for example, too "
            "far from your last sign-in too soon), so Parley refused it.\n\n"
            "If this was not you, change your password now. If it was you, sign in again "
            "later from a device or network you have used before.\n"
        ),
        html=(
            "<p>Hello $name,</p>"
            "<p>At $time someone signed in to your Parley account with your password, from "
            "$ip (country: $country, network: $network). It looked risky (for example, too "
            "far from your last sign-in too soon), so Parley refused it.</p>"
            "<p>If this was not you, change your password now. If it was you, sign in again "
            "later from a device or network you have used before.</p>"
        ),
    ),
}


def render(kind: str, to: str, values: dict[str, str]) -> EmailMessage:
    """The message for ``kind``; ``KeyError`` for an unknown kind or a missing value."""
    template = TEMPLATES[kind]
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = template.subject
    message.set_content(Template(template.text).substitute(values))
    escaped = {k: html.escape(v, quote=True) for k, v in values.items()}
    message.add_alternative(Template(template.html).substitute(escaped), subtype="html")
    return message
