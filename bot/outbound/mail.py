"""E-mail through the clinic's SMTP server (aiosmtplib): multipart text + HTML, inline images.

Configured by the SMTP_* settings; STARTTLS is used unless SMTP_STARTTLS=false, and port 465
means TLS from the first byte (SMTPS). Without SMTP_HOST, or without a sender address
(SMTP_FROM, else SMTP_USER), nothing is sent by e-mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from bot.config import Settings

IMPLICIT_TLS_PORT = 465
TIMEOUT_SECONDS = 30.0


class EmailError(RuntimeError):
    """The SMTP server refused or could not be reached; the message names the reason."""


@dataclass(frozen=True)
class InlineImage:
    """An image the HTML part shows with `<img src="cid:{content_id}">`."""

    content_id: str
    png: bytes
    filename: str


def sender_of(settings: Settings) -> str | None:
    """The From address, or None when e-mail is not configured."""
    if not settings.smtp_host:
        return None
    return settings.smtp_from or settings.smtp_user or None


def configured(settings: Settings) -> bool:
    """Whether the deployment can send e-mail at all."""
    return sender_of(settings) is not None


def build_message(
    *,
    sender: str,
    recipient: str,
    subject: str,
    text: str,
    html: str,
    images: Sequence[InlineImage],
    now: datetime,
) -> EmailMessage:
    """A multipart/alternative message: plain text, then HTML with its images related to it
    (multipart/related), so mail clients show the charts inline and text-only ones the text."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    html_part = next(
        part for part in message.iter_parts() if part.get_content_type() == "text/html"
    )
    assert isinstance(html_part, EmailMessage)
    for image in images:
        html_part.add_related(
            image.png,
            maintype="image",
            subtype="png",
            cid=f"<{image.content_id}>",
            filename=image.filename,
            disposition="inline",
        )
    return message


async def send(settings: Settings, message: EmailMessage) -> None:
    """Sends one message through the configured SMTP server; EmailError when it fails."""
    if not settings.smtp_host:
        raise EmailError("SMTP_HOST is not set")
    implicit_tls = settings.smtp_port == IMPLICIT_TLS_PORT
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_user or None,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            use_tls=implicit_tls,
            start_tls=False if implicit_tls else settings.smtp_starttls,
            timeout=TIMEOUT_SECONDS,
        )
    except (aiosmtplib.SMTPException, OSError) as error:
        raise EmailError(f"{type(error).__name__}: {error}") from None
