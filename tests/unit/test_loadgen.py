from __future__ import annotations

import pytest

from webhook.devtools.loadgen import LoadError, Target, post_request


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://127.0.0.1:8443", id="ipv4"),
        pytest.param("https://[::1]:8443", id="ipv6"),
        pytest.param("https://localhost:8443", id="localhost"),
    ],
)
def test_loopback_targets_are_accepted(url: str) -> None:
    assert Target.from_url(url, None).port == 8443


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://10.0.0.1:8443", id="private"),
        pytest.param("https://example.com", id="name"),
    ],
)
def test_other_targets_are_refused(url: str) -> None:
    with pytest.raises(LoadError, match="only loopback"):
        Target.from_url(url, None)


def test_a_post_request_carries_its_body_length() -> None:
    request = post_request("localhost", "/mutate", b'{"a": 1}')
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /mutate HTTP/1.1\r\n")
    assert b"Content-Length: 8" in head
    assert body == b'{"a": 1}'
