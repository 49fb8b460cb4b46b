"""Which webhook URLs and addresses the operator may reach, as pure functions for the shell's notifier.

A webhook URL comes from a tenant (`spec.notifications.webhookUrl`, or a Secret in the tenant's
namespace), so it is untrusted input. The rules:

- the URL is `http` or `https`, printable ASCII, with a host and no credentials (`user@`);
- every address its host resolves to is public (globally routable): loopback, link-local
  (169.254.0.0/16, fe80::/10), private (RFC 1918, fc00::/7), unspecified, multicast and other
  special-purpose addresses are refused, also when an IPv6 address carries one inside it
  (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo),
  unless the operator's admin allows a CIDR that holds it (`BENTHAM_WEBHOOK_ALLOWED_CIDRS`).

The shell resolves the host once, checks every address here, and connects only to an address
checked (see `bentham.controller.webhook_client`). Messages name where the URL came from and the
rule, never the URL's path or query (a webhook URL may carry a token in them).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_CIDRS_SETTING = "BENTHAM_WEBHOOK_ALLOWED_CIDRS"
SCHEMES = {"http": 80, "https": 443}

# RFC 3986, appendix B: scheme, authority, path, query (the fragment is never sent).
_URL = re.compile(r"^([^:/?#]+):(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#.*)?$")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_.])?$")
_PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]*$")
_PRIVATE = tuple(ipaddress.ip_network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

_REFUSED_UNLESS_ALLOWED = (
    f"webhooks may reach only public addresses unless the operator's {ALLOWED_CIDRS_SETTING} "
    "(chart value webhooks.allowedCidrs) holds a CIDR with it"
)


class WebhookRefused(ValueError):
    """A webhook URL, header or address the operator will not reach; the message names the source and the rule."""


class AllowedCidrsInvalid(ValueError):
    """The admin's list of allowed CIDRs cannot be read; the message names the setting and the entry."""


@dataclass(frozen=True)
class WebhookUrl:
    """A checked webhook URL, split into what a request needs."""

    scheme: str
    host: str
    """A lower-case host name, or an IP address without brackets."""
    port: int
    target: str
    """The request target: the path (at least `/`) and the query; never logged."""

    @property
    def host_header(self) -> str:
        """The Host header: the name as written (brackets around IPv6), and the port unless it is the scheme's."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """`scheme://host:port`, to name the destination in a log line without its path or query."""
        return f"{self.scheme}://{self.host_header}"


def webhook_url(url: str, source: str) -> WebhookUrl:
    """`url` checked and split; raises WebhookRefused naming `source` (the field or Secret key) and the rule."""
    if not _PRINTABLE_ASCII.match(url):
        raise WebhookRefused(f"{source}: a webhook URL must be printable ASCII, no spaces (percent-encode the rest)")
    parts = _URL.match(url)
    scheme = parts.group(1).lower() if parts else ""
    if parts is None or scheme not in SCHEMES:
        shown = f"{scheme!r}" if scheme and len(scheme) <= 20 else "none"
        raise WebhookRefused(f"{source}: a webhook URL's scheme must be http or https, not {shown}")
    authority = parts.group(3)
    if not authority:
        raise WebhookRefused(f"{source}: a webhook URL must name a host (http[s]://host[:port]/path)")
    if "@" in authority:
        raise WebhookRefused(
            f"{source}: a webhook URL must not hold credentials (user@host); put the Authorization value in the Secret"
        )
    host, port_text = _split_authority(authority, source)
    port = SCHEMES[scheme]
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65_536:
            raise WebhookRefused(f"{source}: a webhook URL's port must be a number from 1 to 65535")
        port = int(port_text)
    target = (parts.group(4) or "/") + (f"?{parts.group(6)}" if parts.group(5) else "")
    if not target.startswith("/"):
        raise WebhookRefused(f"{source}: a webhook URL's path must start with /")
    return WebhookUrl(scheme=scheme, host=host, port=port, target=target)


def _split_authority(authority: str, source: str) -> tuple[str, str]:
    """(host, port text) of `host[:port]` or `[v6]:port`."""
    if authority.startswith("["):
        literal, bracket, rest = authority[1:].partition("]")
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            address = None
        if not bracket or address is None or (rest and not rest.startswith(":")):
            raise WebhookRefused(f"{source}: a webhook URL's host in brackets must be an IPv6 address")
        return str(address), rest[1:]
    host, _, port_text = authority.partition(":")
    host = host.lower()
    if not _HOST_NAME.match(host) or ".." in host:
        raise WebhookRefused(f"{source}: a webhook URL's host must be a DNS name or an IP address")
    return host, port_text


def allowed_networks(text: str, setting: str = ALLOWED_CIDRS_SETTING) -> tuple[IPNetwork, ...]:
    """The CIDRs in `text` (separated by commas or spaces); raises AllowedCidrsInvalid naming `setting`."""
    networks: list[IPNetwork] = []
    for entry in re.split(r"[,\s]+", text.strip()):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except ValueError as error:
            raise AllowedCidrsInvalid(
                f"{setting}: {entry!r} is not a CIDR such as 10.0.0.0/8 or fd00::/8 ({error})"
            ) from None
    return tuple(networks)


def address_refusal(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why a webhook may not connect to `address` (e.g. "a loopback address"), or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1, for the rules and the allowance alike
    if any(address in network for network in allowed):
        return None
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = None if any(embedded in network for network in allowed) else _special_kind(embedded)
        if inner is not None:
            return f"an IPv6 address carrying {embedded}, {inner}"
        if address in _NAT64:
            return None  # NAT64 of a public IPv4 address reaches just that address (whatever Python's is_global says)
    return _special_kind(address)


def checked_addresses(
    url: WebhookUrl, addresses: Sequence[str], allowed: Sequence[IPNetwork], source: str
) -> tuple[IPAddress, ...]:
    """The resolved `addresses` of `url.host` when every one may be reached; else WebhookRefused naming the first."""
    if not addresses:
        raise WebhookRefused(f"{source}: {url.host} resolves to no address")
    checked: list[IPAddress] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise WebhookRefused(f"{source}: {url.host} resolves to {text!r}, not an IP address") from None
        refusal = address_refusal(address, allowed)
        if refusal is not None:
            found = "is" if text == url.host else f"resolves to {text},"
            raise WebhookRefused(f"{source}: {url.host} {found} {refusal}; {_REFUSED_UNLESS_ALLOWED}")
        checked.append(address)
    return tuple(checked)


def header_problem(name: str, value: str) -> str | None:
    """Why `value` cannot be sent as header `name` (a line break would inject headers), without showing it."""
    if _HEADER_VALUE.match(value):
        return None
    return f"the {name} value must be printable ASCII on one line (the value is not shown)"


def _special_kind(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in _PRIVATE):
        return "a private address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a special-purpose (not globally routable) address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (NAT64, IPv4-compatible, 6to4, Teredo), which a gateway may reach."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None
