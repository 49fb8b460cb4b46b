"""Which webhook URLs and addresses the operator may reach: http(s) only, public addresses unless allowed."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bentham.core.webhook_policy import (
    AllowedCidrsInvalid,
    WebhookRefused,
    address_refusal,
    allowed_networks,
    checked_addresses,
    header_problem,
    webhook_url,
)

SOURCE = "Secret tenant-acme/hook key url"


def test_an_https_url_is_split_into_host_port_and_target_without_its_fragment() -> None:
    url = webhook_url("HTTPS://Hooks.Example.com/v1/notify?team=7#top", SOURCE)

    assert (url.scheme, url.host, url.port, url.target) == ("https", "hooks.example.com", 443, "/v1/notify?team=7")
    assert url.host_header == "hooks.example.com" and url.origin == "https://hooks.example.com"


def test_a_port_and_an_ipv6_literal_go_into_the_host_header() -> None:
    url = webhook_url("http://[2606:4700:4700::1111]:8080", SOURCE)

    assert (url.host, url.port, url.target) == ("2606:4700:4700::1111", 8080, "/")
    assert url.host_header == "[2606:4700:4700::1111]:8080"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("file:///etc/passwd", "scheme must be http or https, not 'file'"),
        ("ftp://files.example.com/x", "scheme must be http or https, not 'ftp'"),
        ("gopher://h:70/_x", "scheme must be http or https, not 'gopher'"),
        ("javascript:alert(1)", "scheme must be http or https"),
        ("hooks.example.com/x", "scheme must be http or https"),
        ("http:/x", "must name a host"),
        ("https://", "must name a host"),
        ("https://user:pw@hooks.example.com/", "must not hold credentials"),
        ("https://hooks.example.com:0/", "port must be a number from 1 to 65535"),
        ("https://hooks.example.com:99999/", "port must be a number from 1 to 65535"),
        ("https://hooks.example.com:http/", "port must be a number from 1 to 65535"),
        ("https://[::1/", "must be an IPv6 address"),
        ("https://[fe80::1]x/", "must be an IPv6 address"),
        ("https://hooks..example.com/", "must be a DNS name or an IP address"),
        ("https://-h.example.com/", "must be a DNS name or an IP address"),
        ("https://hooks.example.com/a b", "printable ASCII"),
        ("https://hooks.example.com/\r\nX-Injected: 1", "printable ASCII"),
        ("https://hoöks.example.com/", "printable ASCII"),
        ("", "printable ASCII"),
    ],
)
def test_a_url_that_is_not_plain_http_or_https_is_refused_naming_its_source_and_the_rule(url: str, rule: str) -> None:
    with pytest.raises(WebhookRefused) as refused:
        webhook_url(url, SOURCE)

    assert str(refused.value).startswith(f"{SOURCE}: ") and rule in str(refused.value)


def test_a_refusal_never_shows_the_urls_path_or_query() -> None:
    with pytest.raises(WebhookRefused) as refused:
        webhook_url("https://user:t0ken@hooks.example.com/s3cret-path?key=s3cret-query", SOURCE)

    assert "t0ken" not in str(refused.value) and "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("100.64.0.1", "a special-purpose (not globally routable) address"),
        ("0.1.2.3", "a special-purpose (not globally routable) address"),
        ("240.0.0.1", "a special-purpose (not globally routable) address"),
        ("255.255.255.255", "a special-purpose (not globally routable) address"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("ff02::1", "a multicast address"),
        ("fec0::1", "a site-local address"),
        ("2001:db8::1", "a special-purpose (not globally routable) address"),
        # IPv4-mapped IPv6 is the IPv4 address itself.
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a link-local address"),
        ("::ffff:10.0.0.1", "a private address"),
        # An IPv6 address that carries an IPv4 one a gateway would reach.
        ("64:ff9b::a9fe:a9fe", "an IPv6 address carrying 169.254.169.254, a link-local address"),
        ("64:ff9b::7f00:1", "an IPv6 address carrying 127.0.0.1, a loopback address"),
        ("2002:a00:1::", "an IPv6 address carrying 10.0.0.1, a private address"),
        ("::7f00:1", "an IPv6 address carrying 127.0.0.1, a loopback address"),
    ],
)
def test_addresses_that_are_not_public_are_refused_with_their_kind(address: str, kind: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_may_be_reached(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_an_allowed_cidr_admits_its_addresses_and_their_ipv4_mapped_forms_only() -> None:
    allowed = allowed_networks("127.0.0.0/8, fd00::/8")

    assert address_refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert address_refusal(ipaddress.ip_address("::ffff:127.0.0.1"), allowed) is None
    assert address_refusal(ipaddress.ip_address("fd12::1"), allowed) is None
    assert address_refusal(ipaddress.ip_address("::1"), allowed) == "a loopback address"
    assert address_refusal(ipaddress.ip_address("10.0.0.1"), allowed) == "a private address"
    assert address_refusal(ipaddress.ip_address("169.254.169.254"), allowed) == "a link-local address"


@given(st.ip_addresses(v=4))
def test_an_ipv4_mapped_ipv6_address_is_judged_as_its_ipv4_address(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")

    assert address_refusal(mapped) == address_refusal(address)
    assert address_refusal(mapped, allowed_networks(f"{address}/32")) is None


def test_allowed_cidrs_are_separated_by_commas_or_spaces_and_may_be_empty() -> None:
    assert allowed_networks("") == () and allowed_networks(" , ") == ()
    assert [str(n) for n in allowed_networks("127.0.0.0/8,10.0.0.0/8  fd00::/8\n192.168.1.7")] == [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "fd00::/8",
        "192.168.1.7/32",
    ]


@pytest.mark.parametrize(("entry", "why"), [("10.0.0.1/8", "has host bits set"), ("loopback", "not a CIDR")])
def test_a_bad_allowed_cidr_names_the_setting_and_the_entry(entry: str, why: str) -> None:
    with pytest.raises(AllowedCidrsInvalid) as invalid:
        allowed_networks(f"127.0.0.0/8,{entry}")

    message = str(invalid.value)
    assert message.startswith(f"BENTHAM_WEBHOOK_ALLOWED_CIDRS: {entry!r} is not a CIDR") and why in message


def test_every_resolved_address_must_be_allowed_and_the_refusal_names_source_host_address_and_rule() -> None:
    url = webhook_url("https://hooks.example.com/x", SOURCE)
    public = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]

    assert [str(a) for a in checked_addresses(url, public, (), SOURCE)] == public
    with pytest.raises(WebhookRefused) as refused:
        checked_addresses(url, [*public, "169.254.169.254"], (), SOURCE)

    assert str(refused.value) == (
        f"{SOURCE}: hooks.example.com resolves to 169.254.169.254, a link-local address; webhooks may reach only "
        "public addresses unless the operator's BENTHAM_WEBHOOK_ALLOWED_CIDRS (chart value webhooks.allowedCidrs) "
        "holds a CIDR with it"
    )


def test_an_ip_literal_is_named_as_itself_and_no_address_at_all_is_refused() -> None:
    url = webhook_url("http://127.0.0.1:8080/x", SOURCE)

    with pytest.raises(WebhookRefused, match=r": 127\.0\.0\.1 is a loopback address; "):
        checked_addresses(url, ["127.0.0.1"], (), SOURCE)
    with pytest.raises(WebhookRefused, match="resolves to no address"):
        checked_addresses(url, [], (), SOURCE)


def test_a_header_value_with_a_line_break_is_refused_without_showing_it() -> None:
    assert header_problem("Authorization", "Bearer abc.DEF-123~+/=") is None
    problem = header_problem("Authorization", "Bearer s3cret\r\nX-Injected: 1")

    assert problem is not None and "one line" in problem and "s3cret" not in problem
