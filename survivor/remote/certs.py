"""The subject of a PEM certificate, as nats-server's `verify_and_map` names the user.

nats-server (Go) maps a client certificate to the user named by
`pkix.Name.String()`: the subject's RDNs in reverse order (RFC 2253), short
names for the common attribute types, `,` between RDNs and `+` inside one,
special characters escaped with a backslash. `survivor broker-config` needs the
scheduler's subject in exactly that form, so it is read here from the DER, by
a small reader of the few ASN.1 elements on the way to the subject. The
standard library's `ssl._ssl._test_decode_cert` would do it too, but it is a
private test hook, and shelling out to `openssl` is what DESIGN rules out.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from survivor.errors import SurvivorError

# OIDs Go prints by name (crypto/x509/pkix attributeTypeNames); others print as dotted=#hex.
_NAMES = {
    "2.5.4.6": "C",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.3": "CN",
    "2.5.4.5": "SERIALNUMBER",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.17": "POSTALCODE",
}
_STRING_TAGS = {0x0C, 0x13, 0x14, 0x16, 0x1A, 0x1E, 0x1C}  # UTF8, Printable, T61, IA5, ...
_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_BEGIN = "-----BEGIN CERTIFICATE-----"
_END = "-----END CERTIFICATE-----"


class CertificateError(SurvivorError):
    """A certificate file that cannot be read or decoded (the message names the file)."""


def certificate_subject(path: Path) -> str:
    """The subject of the first certificate in the PEM file at `path`, e.g. `CN=dc1-a`."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise CertificateError(f"{path}: cannot read: {exc.strerror or exc}") from None
    start, end = text.find(_BEGIN), text.find(_END)
    if start < 0 or end < start:
        raise CertificateError(f"{path}: no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        der = base64.b64decode("".join(text[start + len(_BEGIN) : end].split()), validate=True)
        return subject_of_der(der)
    except (binascii.Error, ValueError, IndexError) as exc:
        raise CertificateError(f"{path}: not a valid X.509 certificate ({exc})") from None


def subject_of_der(der: bytes) -> str:
    """The RFC 2253 subject of a DER certificate; ValueError or IndexError when malformed."""
    tag, cert, _ = _element(der, 0)
    _expect(tag, _SEQUENCE, "certificate")
    tag, tbs, _ = _element(cert, 0)
    _expect(tag, _SEQUENCE, "tbsCertificate")
    fields = _children(tbs)
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5:
        raise ValueError("tbsCertificate is too short")
    tag, subject = fields[4]
    _expect(tag, _SEQUENCE, "subject")
    rdns = []
    for set_tag, rdn in _children(subject):
        _expect(set_tag, _SET, "relative distinguished name")
        parts = []
        for seq_tag, pair in _children(rdn):
            _expect(seq_tag, _SEQUENCE, "attribute")
            (oid_tag, oid), (value_tag, value) = _children(pair)[:2]
            _expect(oid_tag, _OID, "attribute type")
            parts.append(_attribute(_oid(oid), value_tag, value))
        rdns.append("+".join(parts))
    return ",".join(reversed(rdns))


def _element(data: bytes, at: int) -> tuple[int, bytes, int]:
    """(tag, contents, next offset) of the DER element at `at`."""
    tag = data[at]
    length = data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError(f"unsupported length of {count} bytes")
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("element runs past the end")
    return tag, data[at : at + length], at + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    found = []
    at = 0
    while at < len(data):
        tag, contents, at = _element(data, at)
        found.append((tag, contents))
    return found


def _expect(tag: int, wanted: int, what: str) -> None:
    if tag != wanted:
        raise ValueError(f"{what}: expected tag 0x{wanted:02x}, found 0x{tag:02x}")


def _oid(data: bytes) -> str:
    first = data[0]
    numbers = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in data[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    return ".".join(str(n) for n in numbers)


def _attribute(oid: str, tag: int, value: bytes) -> str:
    name = _NAMES.get(oid)
    if name is None or tag not in _STRING_TAGS:
        return f"{oid}=#{bytes([tag, len(value)]).hex()}{value.hex()}"
    text = value.decode("utf-16-be" if tag == 0x1E else "utf-8", errors="replace")
    return f"{name}={_escape(text)}"


def _escape(text: str) -> str:
    """RFC 2253 escaping as Go writes it."""
    out = []
    for index, char in enumerate(text):
        special = char in ',+"\\<>;'
        edge = (index == 0 and char in " #") or (index == len(text) - 1 and char == " ")
        out.append("\\" + char if special or edge else char)
    return "".join(out)
