"""One error tree for the whole product; the web edge alone maps it to HTTP codes."""


class CampaignsError(Exception):
    """Base of every error the product raises on purpose."""


class ConfigError(CampaignsError):
    """A configuration value is missing or malformed."""


class NotFound(CampaignsError):
    """The thing asked for does not exist."""


class ValidationError(CampaignsError):
    """Input was refused; the message says which field and what to do."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(CampaignsError):
    """A state machine was asked for a move its transition table does not allow."""


class Conflict(CampaignsError):
    """The request contradicts what is recorded (an idempotency key reused for another
    thing, a second renewal of one contract term); the message says what is there."""


class TemplateError(ValidationError):
    """A letter template does not compile or render; the message names the line."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.line = line


class AuthenticationFailed(CampaignsError):
    """The e-mail address or password is wrong."""


class LoginThrottled(CampaignsError):
    """Too many failed logins; the message says when to try again."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermissionDenied(CampaignsError):
    """The user's role does not allow this action."""


class TokenInvalid(CampaignsError):
    """A tracking or unsubscribe token is tampered, foreign or malformed."""
