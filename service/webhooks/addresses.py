"""Where a webhook may go: an http(s) URL whose host resolves to public addresses only.

A receiver's host is resolved off the event loop, and every address it resolves to must be
public: one private answer among public ones refuses it, so that a name cannot smuggle in an
internal address beside a harmless one. The check runs when a subscription is made and again on
every connection (DNS can change between the two), in the network layer that then connects to
the address it checked, never to a second resolution of the name (which DNS rebinding could
point elsewhere).
"""

import asyncio
import functools
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")
MIN_PORT, MAX_PORT = 1, 65535
DEFAULT_PORTS = {"http": 80, "https": 443}
"""Each scheme's own port: the one a URL (and a browser's `Origin`) leaves out."""
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVER_THREADS = 8
_resolver_threads = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="webhook-resolver")
"""Receivers' names are looked up on threads of their own. A lookup that the name's servers never
answer holds its thread until the system resolver gives up, long after the attempt's timeout; on
the event loop's default threads, a few such names would stall every other request's blocking
work (file writes, password hashing). Here they can only hold up other webhook lookups."""


class AddressRefused(Exception):
    """The receiver's host resolves to an address webhooks may not go to, or does not resolve."""


class HostUnresolved(AddressRefused):
    """The receiver's host does not resolve (now): refused at subscription time, and at delivery
    time a receiver out of reach rather than one refused."""


def check_url(url: str) -> str:
    """The URL, when it is one a webhook can be sent to; ValueError saying why not."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"a webhook URL has at most {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ValueError("not a URL") from None
    if parsed.scheme not in SCHEMES or not parsed.host:
        raise ValueError("a webhook URL is http:// or https:// with a host")
    if parsed.userinfo:
        raise ValueError("a webhook URL carries no user name or password: the signature authenticates each delivery")
    if parsed.fragment:
        raise ValueError("a webhook URL has no #fragment")
    if parsed.port is not None and not MIN_PORT <= parsed.port <= MAX_PORT:
        raise ValueError(f"a webhook URL's port is {MIN_PORT} to {MAX_PORT}")
    return url


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to (mapped, 6to4, NAT64), which decides where it goes."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """What kind of address this is, when a webhook may not go to it ("a loopback address");
    None for a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = _embedded_ipv4(address)
        if carried is not None:
            kind = refusal(carried)
            return None if kind is None else f"{kind} (it carries {carried})"
    for kind, is_kind in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("the unspecified address", address.is_unspecified),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("an address not routed on the internet", not address.is_global),
    ):
        if is_kind:
            return kind
    return None


async def resolve(host: str, port: int, timeout: float) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order, without repeats; resolved on a
    thread of RESOLVER_THREADS (getaddrinfo blocks). HostUnresolved when it does not resolve in time."""
    loop = asyncio.get_running_loop()
    lookup = functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        async with asyncio.timeout(timeout):
            answers = await loop.run_in_executor(_resolver_threads, lookup)
    except TimeoutError:
        raise HostUnresolved(f"the host {host} did not resolve within {timeout:g} s") from None
    except (socket.gaierror, UnicodeError) as error:
        raise HostUnresolved(f"the host {host} does not resolve ({error})") from None
    return list(dict.fromkeys(str(answer[4][0]).split("%")[0] for answer in answers))


async def public_addresses(host: str, port: int, timeout: float) -> list[str]:
    """`host`'s addresses, when every one of them is public; AddressRefused otherwise."""
    addresses = await resolve(host, port, timeout)
    for address in addresses:
        kind = refusal(ipaddress.ip_address(address))
        if kind is not None:
            where = f"{address} is {kind}" if host == address else f"the host {host} resolves to {address}, {kind}"
            raise AddressRefused(f"{where}; webhooks go to public addresses only")
    return addresses


async def check_receiver(url: str, timeout: float) -> None:
    """Whether a webhook may go to `url` now (at subscription time); AddressRefused saying why not."""
    parsed = httpx.URL(url)
    await public_addresses(parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme], timeout)
