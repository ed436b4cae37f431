"""Route URLs: literal, because nginx reads a `proxy_pass` argument as a template.

`http://$http_x_up/` would send each request wherever a client header says (an open
proxy); `;`, `{`, quotes or a trailing backslash change or break the config. So a route
URL is exactly a scheme, a host name or IP address, an optional port in range and an
optional path of plain characters; nothing else (no userinfo, query, fragment or
variables) is accepted, whatever nginx or a URL parser would make of it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, StrictStr

from phoenix.inventory.models.fields import is_hostname

_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._~/-]*)?"
)
WHAT = (
    "write it as http(s)://HOST[:PORT][/PATH]: a host name or IP address, a port from 1 "
    "to 65535, a path of letters, digits and . _ ~ / - (nothing nginx would read as a "
    "variable or syntax, no user:password@)"
)


def _literal_url(value: str) -> str:
    match = _URL.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a literal URL: {WHAT}")
    host, port = match["host"], match["port"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{value!r}: {host} is not an IPv6 address") from None
    elif not is_hostname(host):
        raise ValueError(f"{value!r}: {host!r} is not a host name or IP address")
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: port {port} is not between 1 and 65535")
    if "//" in (match["path"] or ""):
        raise ValueError(f"{value!r}: the path has an empty segment ('//')")
    return value


RouteUrl = Annotated[StrictStr, AfterValidator(_literal_url)]
