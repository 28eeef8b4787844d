"""A real `openiai serve` in a subprocess and official-SDK clients pointed at it.

The server harness itself lives in the package (:mod:`openiai.bench.server`), shared with
``openiai bench``; it is re-exported here so tests keep importing it from one place.
"""

from __future__ import annotations

import json

from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.iai.v20180301 import iai_client as iai_client_2018
from tencentcloud.iai.v20180301 import models as models_2018
from tencentcloud.iai.v20200303 import iai_client as iai_client_2020
from tencentcloud.iai.v20200303 import models as models_2020

from openiai.bench.server import OPENIAI, REPO, Server, free_port

__all__ = ["OPENIAI", "REPO", "SDK", "SIGNINGS", "Api", "Common", "Server", "free_port"]

SDK = {
    "2020-03-03": (iai_client_2020, models_2020),
    "2018-03-01": (iai_client_2018, models_2018),
}
SIGNINGS = [("TC3-HMAC-SHA256", "POST"), ("TC3-HMAC-SHA256", "GET"),
            ("HmacSHA256", "POST"), ("HmacSHA256", "GET"), ("HmacSHA1", "POST")]


class Api:
    """Calls actions through the official Python SDK, by name, with plain dict parameters."""

    def __init__(self, server: Server, secret_id: str, secret_key: str,
                 version: str = "2020-03-03", sign: str = "TC3-HMAC-SHA256",
                 method: str = "POST") -> None:
        self.server, self.secret_id, self.secret_key = server, secret_id, secret_key
        self.version, self.sign, self.method = version, sign, method
        client_mod, self.models = SDK[version]
        profile = ClientProfile(signMethod=sign, httpProfile=HttpProfile(
            protocol="http", endpoint=server.endpoint, reqMethod=method, reqTimeout=120))
        self.client = client_mod.IaiClient(credential.Credential(secret_id, secret_key),
                                           "ap-guangzhou", profile)

    def variant(self, **kw) -> "Api":
        args = dict(version=self.version, sign=self.sign, method=self.method) | kw
        return Api(self.server, self.secret_id, self.secret_key, **args)

    def call(self, action: str, **params) -> dict:
        req = getattr(self.models, f"{action}Request")()
        req.from_json_string(json.dumps(params))
        resp = getattr(self.client, action)(req)
        return json.loads(resp.to_json_string())

    def error(self, action: str, **params) -> TencentCloudSDKException:
        """Call and expect an API error; returns the SDK exception (``.code``, ``.message``)."""
        try:
            result = self.call(action, **params)
        except TencentCloudSDKException as exc:
            assert exc.code and exc.requestId, f"error without code/RequestId: {exc}"
            return exc
        raise AssertionError(f"{action} succeeded but an error was expected: {result}")

    def code(self, action: str, **params) -> str:
        return self.error(action, **params).code


class Common:
    """The SDK's CommonClient (how callers reach actions the typed SDK lacks, or send what its
    models would not: another API version, unknown parameters, wrong JSON types), answering
    like :class:`Api`: ``call`` returns the Response fields, ``code`` the error code."""

    def __init__(self, api: Api, version: str) -> None:
        profile = ClientProfile(httpProfile=HttpProfile(
            protocol="http", endpoint=api.server.endpoint, reqTimeout=120))
        self.client = CommonClient("iai", version, credential.Credential(
            api.secret_id, api.secret_key), "ap-guangzhou", profile)

    def call(self, action: str, **params) -> dict:
        return self.client.call_json(action, params)["Response"]

    def code(self, action: str, **params) -> str:
        try:
            result = self.call(action, **params)
        except TencentCloudSDKException as exc:
            assert exc.code and exc.requestId
            return exc.code
        raise AssertionError(f"{action} succeeded but an error was expected: {result}")
