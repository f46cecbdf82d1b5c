"""A signed-in user's own language choice (ClinicianProfile.language) over the browser's.

Django's LocaleMiddleware has already activated the language of Accept-Language (or the default);
a user who chose a language in their preferences gets that one instead, on every page.
"""

from __future__ import annotations

from django.utils import translation


def user_language(user) -> str:
    """The language a user chose, or "" (the browser's / the default)."""
    if not getattr(user, "is_authenticated", False):
        return ""
    # A user without a profile row (RelatedObjectDoesNotExist is an AttributeError) has none.
    profile = getattr(user, "profile", None)
    return (profile.language if profile is not None else "") or ""


class UserLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = user_language(request.user)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)
