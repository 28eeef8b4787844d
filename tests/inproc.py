"""The in-process tier: actions called through the API's own dispatch, without HTTP.

:class:`InProcessApi` answers like :class:`harness.Api` (same ``call``, ``error``, ``code``,
``variant(version=...)``), but instead of signing and sending a request it hands the
parameters to :func:`openiai.api.dispatch.dispatch` - the function the HTTP endpoint runs once
a request is authenticated - on a :class:`~openiai.services.Services` in this process. So a
test on this tier exercises the same resolution, validation, handlers (real models, real
database, real vector index) and response shaping as the server, minus the wire.

What the wire would do to the data is still done: parameters go through the SDK's request
model and JSON exactly as the SDK sends a TC3 POST body (unknown fields dropped, ``None``
left out, ints stay ints), and results come back through JSON and the SDK's response model,
so a test reads the same dict, ``RequestId`` included, on either tier.

Failures: an :class:`ApiError` becomes the SDK's exception, as on the wire. Anything else is
raised as it is, so a handler bug fails the test with its own traceback instead of an
``InternalError`` and a pointer into a server log.
"""

from __future__ import annotations

import json
import uuid

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from harness import SDK
from openiai.api.dispatch import dispatch
from openiai.core.errors import ApiError


class InProcessApi:
    """One account's calls on a Services in this process, for one API version.

    There is no signing and no HTTP method here, so ``variant`` takes only ``version``: a test
    about signatures or methods cannot end up on this tier by accident.
    """

    def __init__(self, services, account_id: int, version: str = "2020-03-03") -> None:
        self.services, self.account_id, self.version = services, account_id, version
        _, self.models = SDK[version]

    def variant(self, *, version: str | None = None) -> "InProcessApi":
        return InProcessApi(self.services, self.account_id, version or self.version)

    def call(self, action: str, **params) -> dict:
        request_id = str(uuid.uuid4())
        try:
            fields = dispatch(self.services, self.account_id, self.version, action,
                              self._as_sent(action, params), request_id=request_id)
        except ApiError as exc:
            raise TencentCloudSDKException(exc.code, exc.message, request_id) from None
        return self._as_received(action, fields, request_id)

    def error(self, action: str, **params) -> TencentCloudSDKException:
        """Call and expect an API error; returns it (``.code``, ``.message``)."""
        try:
            result = self.call(action, **params)
        except TencentCloudSDKException as exc:
            return exc
        raise AssertionError(f"{action} succeeded but an error was expected: {result}")

    def code(self, action: str, **params) -> str:
        return self.error(action, **params).code

    # ---- what the SDK and the wire do to the data ------------------------------------------
    def _as_sent(self, action: str, params: dict) -> dict:
        """The parameters as the server reads them from the SDK's JSON body."""
        request = getattr(self.models, f"{action}Request")()
        request.from_json_string(json.dumps(params))
        return json.loads(json.dumps(request._serialize()))

    def _as_received(self, action: str, fields: dict, request_id: str) -> dict:
        """The output fields as a caller of the SDK reads them (``harness.Api.call``)."""
        body = json.dumps({"Response": {**fields, "RequestId": request_id}}, ensure_ascii=False)
        response = getattr(self.models, f"{action}Response")()
        response._deserialize(json.loads(body)["Response"])
        return json.loads(response.to_json_string())
