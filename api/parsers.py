"""A multipart parser that refuses file names it would otherwise have to rewrite.

Django quietly strips folder parts and invisible characters from uploaded file
names; an upload called ``../../etc/x.tar.gz`` should instead be refused with a
reason, so the uploader knows the file was not stored under that name.
"""

from django.conf import settings
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import DataAndFiles, JSONParser, MultiPartParser


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


class BoundedJSONParser(JSONParser):
    """JSON bodies up to a size, checked before a byte is parsed: small for anonymous requests (the logins),
    TESTHUB_MAX_JSON_BYTES for signed-in ones (a task with 100,000 case names)."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        signed_in = _signed_in(request)
        limit = settings.TESTHUB_MAX_JSON_BYTES if signed_in else settings.TESTHUB_MAX_ANONYMOUS_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ParseError("The Content-Length header is not a number.") from None
        if length > limit:
            who = "" if signed_in else " without signing in"
            raise BodyTooLarge(f"The body is {length} bytes; at most {limit} are taken here{who}.")
        return super().parse(stream, media_type, parser_context)


def _signed_in(request) -> bool:
    if hasattr(request, "_user"):  # DRF keeps the user once authentication is done
        return request._user.is_authenticated
    # Asked while authentication itself runs (the session's CSRF check reads the body): asking DRF for the user
    # here would start authentication again. The session's own user is the one being authenticated.
    return request._request.user.is_authenticated


class _RefusingRewrittenNames(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name):
        cleaned = super().sanitize_file_name(file_name)
        if cleaned != file_name:
            raise MultiPartParserError(
                f"File name {file_name!r} has a folder part or hidden characters; "
                "upload the file under a plain name such as product-1.0.tar.gz."
            )
        return cleaned


class StrictMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            data, files = _RefusingRewrittenNames(meta, stream, request.upload_handlers, encoding).parse()
        except MultiPartParserError as error:
            raise ParseError(str(error)) from None
        return DataAndFiles(data, files)
