#!/usr/bin/env python3
"""Independent check of wire-spec/vectors/ against wire-spec/README.md.

Written from the spec alone (never from the Rust code), with the standard
library and the `cryptography` package that the deployed Python client uses
(AESGCM, PBKDF2HMAC, HKDF). Shamir's field GF(2^8) is done here by hand.
It checks every case of every file in vectors/ and runs in CI: `.ci/run`
installs `cryptography` (tools/requirements.txt) into a virtual environment
of its own and runs this script. By hand:

    python3 wire-spec/tools/check_vectors.py

Prints `FAIL <case>: got ..., want ...` for each mismatch and a summary;
exits 1 on any mismatch.
"""
import base64
import hashlib
import hmac
import json
import re
import sys
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
DIRS = {1: "physician-to-patient", 2: "patient-to-physician"}

# Section 1: Unicode White_Space (not str.isspace(), which also takes U+001C-U+001F).
WHITE_SPACE = frozenset(
    [chr(c) for c in range(0x09, 0x0E)] + [" ", "\u0085", "\u00a0", "\u1680"]
    + [chr(c) for c in range(0x2000, 0x200B)] + ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"])
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Fail(Exception):
    pass


def ensure(condition, error):
    """The spec's checks: `error` unless `condition` holds."""
    if not condition:
        raise Fail(error)


def strip_ws(text):
    return "".join(ch for ch in text if ch not in WHITE_SPACE)


def trim_ws(text):
    return text.strip("".join(WHITE_SPACE))


def hkdf(ikm, label, context, length=32):
    info = label.encode() + b":" + context.encode()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(ikm)


def hmac256(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def u(n, width):
    return n.to_bytes(width, "big")


def parse_now(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def month_start(y, m):
    return datetime(y, m, 1, tzinfo=timezone.utc)


def next_month(y, m):
    return (y + 1, 1) if m == 12 else (y, m + 1)


def ename(y, m):
    return f"{y:04d}-{m:02d}"


def parse_epoch(s):
    y, m = s.split("-")
    return int(y), int(m)


def valid_epoch(y, m):
    return 2000 <= y <= 9999 and 1 <= m <= 12


def b64url_decode(s):
    """Section 1: base64url without padding, canonical; ValueError otherwise."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s) or len(s) % 4 == 1:
        raise ValueError(s)
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if b64url(raw) != s:
        raise ValueError(s)  # non-zero unused trailing bits
    return raw


def b64url(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64std_decode(s):
    """Section 6: standard base64 with padding, canonical."""
    if not re.fullmatch(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", s):
        raise ValueError(s)
    raw = base64.b64decode(s)
    if base64.b64encode(raw).decode() != s:
        raise ValueError(s)
    return raw


def read_code(label, text, checksum_by_length):
    """Section 1: code(label, payload, c) read back; checksum_by_length maps
    the allowed numbers of characters to their checksum lengths c."""
    chars = "".join(ch.upper() if ch.isascii() else ch for ch in text
                    if ch != "-" and ch not in WHITE_SPACE)
    chars = chars.replace("O", "0").replace("I", "1").replace("L", "1")
    ensure(len(chars) in checksum_by_length, "wrong_length")
    ensure(all(ch in CROCKFORD for ch in chars), "bad_character")
    value = 0
    for ch in chars:
        value = value << 5 | CROCKFORD.index(ch)
    raw = u(value, len(chars) * 5 // 8)
    c = checksum_by_length[len(chars)]
    payload = raw[:-c]
    ensure(hashlib.sha256(label.encode() + payload).digest()[:c] == raw[-c:], "checksum")
    return payload


def pct_decode(value, error="invalid"):
    """Section 3.5: a value of %XX escapes and RFC 3986 query characters other
    than & = +; the decoded bytes must be UTF-8."""
    ensure(re.fullmatch(r"(?:[A-Za-z0-9\-._~!$'()*,;:@/?]|%[0-9A-Fa-f]{2})*", value), error)
    raw = re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)), value).encode("latin-1")
    return utf8(raw, error)


def utf8(raw, error):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Fail(error)


def decode(decoder, text, error):
    try:
        return decoder(text)
    except ValueError:
        raise Fail(error)


# ---------------------------------------------------------------- keys (3)

def chain_key(secret, start, target):
    key, cur = hkdf(secret, "medcrypt/v2/first-epoch-key", ename(*start)), start
    while cur < target:
        cur = next_month(*cur)
        key = hkdf(key, "medcrypt/v2/epoch-ratchet", ename(*cur))
    return key


def window(now, ep):
    """Section 2: raise unless epoch `ep` is accepted at `now`."""
    cur = (now.year, now.month)
    if ep < cur and now >= month_start(*next_month(*ep)) + timedelta(days=7):
        raise Fail("expired")
    if ep > cur and now < month_start(*ep) - timedelta(minutes=10):
        raise Fail("not_yet_valid")


def inbound(case):
    return 1 if case["receiver"] == "patient" else 2


def epoch_key(case, ep):
    """The receiver's key of epoch `ep` (3.3), or unknown_key_hint."""
    start = parse_epoch(case["start_epoch"])
    ensure(ep >= start, "unknown_key_hint")
    return chain_key(bytes.fromhex(case["pairing_secret"]), start, ep)


# ---------------------------------------------------------------- v2 (4, 5)

def prefix_verdict(text):
    """Section 5, step 1: the prefix forms, in their order."""
    if text.startswith("[MEDCRYPT:v1:"):
        return "legacy_v1"  # section 6; no v2 case is one
    if text.startswith("[MEDCRYPT:v2:") or text.startswith("MEDCRYPT:v1:"):
        return "malformed"
    for prefix in ("MEDCRYPT:", "[MEDCRYPT:"):
        if text.startswith(prefix):
            token = re.match(r"v[1-9][0-9]{0,3}:", text[len(prefix):])
            return "unsupported_version" if token else "damaged"
    return "malformed"


def open_v2(case):
    text = strip_ws(case["wire"])
    if not text.startswith("MEDCRYPT:v2:"):
        raise Fail(prefix_verdict(text))
    body = decode(b64url_decode, text[len("MEDCRYPT:v2:"):], "damaged")
    ensure(len(body) >= 4, "damaged")
    content, checksum = body[:-4], body[-4:]
    ensure(hashlib.sha256(b"medcrypt/v2/wire-checksum" + b"MEDCRYPT:v2:" + content).digest()[:4] == checksum,
           "damaged")
    ensure(len(content) >= 13, "malformed")
    header, nonce, ct = content[:13], content[13:25], content[25:]
    ensure(header[0] == 2, "unsupported_version")
    ep, d = (int.from_bytes(header[1:3], "big"), header[3]), header[4]
    seq, hint = int.from_bytes(header[5:9], "big"), header[9:13]
    ensure(valid_epoch(*ep) and d in DIRS, "malformed")
    ensure(len(ct) >= 48 and (len(ct) - 16) % 32 == 0, "malformed")  # 32k + 16, k >= 1
    window(parse_now(case["now"]), ep)
    key = epoch_key(case, ep)
    ensure(hkdf(key, "medcrypt/v2/key-hint", ename(*ep), 4) == hint, "unknown_key_hint")
    mkey = hkdf(key, "medcrypt/v2/message-key", f"{ename(*ep)}:{DIRS[d]}")
    try:
        pt = AESGCM(mkey).decrypt(nonce, ct, header)
    except InvalidTag:
        raise Fail("authentication_failed")
    ensure(d == inbound(case), "reflected")
    # 4.3: layout first, then the kind, then UTF-8.
    ensure(len(pt) >= 5, "malformed")
    kind, length = pt[0], int.from_bytes(pt[1:5], "big")
    ensure(-(-(5 + length) // 32) * 32 == len(pt) and not any(pt[5 + length:]), "malformed")
    ensure(kind == 1, "unsupported_payload")
    text = utf8(pt[5:5 + length], "malformed")
    return "success", text, {"epoch": ename(*ep), "direction": DIRS[d], "sequence": seq}


# ---------------------------------------------------------------- v1 (6)

def v1_month_key(secret, month):
    salt = hmac256(secret.encode(), month.encode())[:16]
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=600_000)
    return salt, kdf.derive(secret.encode())


def open_v1(case, keys):
    text = strip_ws(case["wire"])
    ensure(text.startswith("[MEDCRYPT:v1:") and text.endswith("]"), "malformed")
    fields = text[len("[MEDCRYPT:v1:"):-1].split(":")
    ensure(len(fields) == 4, "malformed")
    pid, nonce, ct, tag = [decode(b64std_decode, f, "damaged") for f in fields]
    pid = utf8(pid, "malformed")
    ensure(len(nonce) == 12 and len(tag) == 16, "malformed")
    ensure(pid == case["patient_id"], "unknown_key_hint")
    now = parse_now(case["now"])
    months = [(now.year, now.month)]
    if now < month_start(now.year, now.month) + timedelta(days=7):
        months.append((now.year - 1, 12) if now.month == 1 else (now.year, now.month - 1))
    for mo in months:
        slot = (case["shared_secret"], ename(*mo))
        if slot not in keys:
            keys[slot] = v1_month_key(*slot)[1]
        try:
            return AESGCM(keys[slot]).decrypt(nonce, ct + tag, pid.encode()).decode()
        except InvalidTag:
            continue
    raise Fail("authentication_failed")


# ---------------------------------------------------------------- attachments (10)

def padme(length):
    e = length.bit_length() - 1
    mask = (1 << (e - e.bit_length())) - 1
    return (length + mask) & ~mask


def read_header(data):
    """10.2 'Reading the header', steps 1-8 (no key needed)."""
    ensure(len(data) >= 10 and data[:8] == b"MEDCRYPT", "not_attachment")
    ensure(data[8:9] != b"P", "malformed")
    ensure(data[8:9] == b"F", "not_attachment")
    version = data[9]
    ensure(version in (2, 3), "unsupported_version")
    fixed = 22 if version == 3 else 14
    ensure(len(data) >= fixed, "truncated")
    ep, n = (int.from_bytes(data[10:12], "big"), data[12]), data[fixed - 1]
    ensure(valid_epoch(*ep) and 1 <= n <= 16, "malformed")
    total = int.from_bytes(data[13:21], "big") if version == 3 else None
    ensure(total is None or (total >= 4096 and padme(total) == total), "malformed")
    hlen = fixed + 65 * n + 32
    ensure(len(data) >= hlen, "truncated")
    stanzas = [data[fixed + 65 * i: fixed + 65 * (i + 1)] for i in range(n)]
    ensure(all(st[4] in DIRS for st in stanzas), "malformed")
    return version, fixed, ep, total, data[:hlen], stanzas


def unwrap(case, version, fixed, ep, header, stanzas):
    """10.2: the window, the stanza with our hint, the file key, the header
    MAC, the direction. Returns (file key, our index, our sender key)."""
    window(parse_now(case["now"]), ep)
    key = epoch_key(case, ep)
    hint = hkdf(key, "medcrypt/v2/key-hint", ename(*ep), 4)
    v = f"medcrypt/v{version}"
    error = "unknown_key_hint"
    for i, st in enumerate(stanzas):
        if st[:4] != hint:
            continue
        context = f"{ename(*ep)}:{DIRS[st[4]]}"
        wrap = hkdf(key, "medcrypt/v2/file-wrap-key", context)
        try:
            fk = AESGCM(wrap).decrypt(st[5:17], st[17:65], v.encode() + b"/file-key" + header[:fixed] + st[:5])
        except InvalidTag:
            error = "authentication_failed"
            continue
        mac = hmac256(hkdf(fk, v + "/file-header-mac", ""), header[:-32])
        ensure(hmac.compare_digest(mac, header[-32:]), "authentication_failed")
        ensure(st[4] == inbound(case), "reflected")
        ensure(version == 3 or len(stanzas) == 1, "sender_unprovable")
        return fk, i, hkdf(key, "medcrypt/v2/file-sender-key", context)
    raise Fail(error)


def chunk_opener(aead, aad):
    def opens(piece, counter, final):
        try:
            return aead.decrypt(u(counter, 11) + bytes([final]), piece, aad)
        except InvalidTag:
            return None
    return opens


def chunk_failure(opens, piece, i, last):
    """10.4 steps 3-5: why chunk i does not open where it stands."""
    if last and opens(piece, i, 0) is not None:
        return "truncated"
    if not last and opens(piece, i, 1) is not None:
        return "appended_data"
    for j in range(max(0, i - 1024), i + 1024):
        if j != i and (opens(piece, j, 0) is not None or opens(piece, j, 1) is not None):
            return "duplicated" if j < i else "reordered"
    return "chunk_modified"


def read_stream_v3(opens, body, total):
    """10.4 steps 1-5, chunk by chunk; the header gives the layout."""
    chunks = -(-total // 65536)
    plain, pos = bytearray(), 0
    for i in range(chunks):
        last = i == chunks - 1
        want = (total - (chunks - 1) * 65536 if last else 65536) + 16
        piece = body[pos:pos + want]
        ensure(len(piece) == want, "truncated")
        chunk = opens(piece, i, int(last))
        if chunk is None:
            raise Fail(chunk_failure(opens, piece, i, last))
        plain += chunk
        pos += want
    ensure(pos == len(body), "appended_data")
    return bytes(plain)


def read_stream_v2(opens, body):
    """10.6: no length in the header; the last chunk is where the input ends."""
    plain, pos, i = bytearray(), 0, 0
    while True:
        piece = body[pos:pos + 65552]
        last = pos + len(piece) >= len(body)
        ensure(i > 0 or len(piece) >= 4096 + 16, "truncated")
        ensure(i == 0 or not last or len(piece) != 16, "empty_final_chunk")
        chunk = opens(piece, i, int(last))
        if chunk is None:
            raise Fail(chunk_failure(opens, piece, i, last))
        plain += chunk
        pos, i = pos + len(piece), i + 1
        if last:
            return bytes(plain)


def parse_metadata(raw):
    """10.4 'The metadata': UTF-8 JSON, no key twice, name/mime strings, size u64."""
    def no_duplicates(pairs):
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_constants(name):
        raise ValueError(name)

    try:
        meta = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants)
        json.dumps(meta, ensure_ascii=False).encode("utf-8")  # a lone surrogate fails here
    except (ValueError, UnicodeError):
        raise Fail("malformed")
    ensure(type(meta) is dict and type(meta.get("name")) is str and type(meta.get("mime")) is str
           and type(meta.get("size")) is int and 0 <= meta["size"] < 2 ** 64, "malformed")
    return {"name": meta["name"], "mime": meta["mime"], "size": meta["size"]}


ARMOR_BEGIN, ARMOR_END = b"-----BEGIN MEDCRYPT FILE-----", b"-----END MEDCRYPT FILE-----"
ASCII_WS = b" \t\n\r\x0c"  # 10.7: not vertical tab


def dearmor(data):
    """10.7: the bytes an ASCII-armoured file carries."""
    lines = data.split(b"\n")
    complete = [True] * (len(lines) - 1) + [False]  # the last piece had no line break
    i = 0
    while i < len(lines) and lines[i].rstrip(b"\r").strip(ASCII_WS) == b"":
        i += 1
    ensure(i < len(lines) and lines[i].rstrip(b"\r").lstrip(ASCII_WS) == ARMOR_BEGIN, "not_attachment")
    out, last_read = b"", False
    for j in range(i + 1, len(lines)):
        line = lines[j][:-1] if lines[j].endswith(b"\r") and complete[j] else lines[j]
        if line == ARMOR_END:
            rest = b"\n".join(lines[j + 1:])
            ensure(rest.strip(ASCII_WS) == b"", "malformed")
            return out
        if not complete[j]:
            raise Fail("truncated")  # cut inside a line, or before the END line
        ensure(not last_read and 1 <= len(line) <= 64, "malformed")
        try:
            chunk = base64.b64decode(line, validate=True)
        except ValueError:
            raise Fail("malformed")
        ensure(base64.b64encode(chunk) == line, "malformed")  # canonical
        out += chunk
        last_read = len(line) < 64 or line.endswith(b"=")
    raise Fail("truncated")


def open_attachment(case, data):
    if data.lstrip(ASCII_WS).startswith(ARMOR_BEGIN):
        data = dearmor(data)
    version, fixed, ep, total, header, stanzas = read_header(data)
    fk, index, sender_key = unwrap(case, version, fixed, ep, header, stanzas)
    v = f"medcrypt/v{version}"
    opens = chunk_opener(AESGCM(hkdf(fk, v + "/file-payload", "")), header[-32:] if version == 3 else b"")
    body = data[len(header):]
    plain = read_stream_v3(opens, body, total) if version == 3 else read_stream_v2(opens, body)
    # Inside the authenticated stream (10.4): all `malformed`, then the tag.
    tags = len(stanzas) if version == 3 else 0
    m = int.from_bytes(plain[:4], "big")
    ensure(len(plain) >= 4 and m <= 4096 and len(plain) >= 4 + m, "malformed")
    meta = parse_metadata(plain[4:4 + m])
    end = 4 + m + meta["size"]
    content, digest = plain[4 + m:end], plain[end:end + 32]
    ensure(len(plain) >= end + 32 + 32 * tags and hashlib.sha256(content).digest() == digest, "malformed")
    ensure(not any(plain[end + 32 + 32 * tags:]), "malformed")
    expected = padme(max(end + 32 + 32 * tags, 4096))
    ensure(len(plain) == expected and total in (None, expected), "malformed")
    if version == 3:
        tag = plain[end + 32 + 32 * index: end + 64 + 32 * index]
        mine = hmac256(sender_key, b"medcrypt/v3/file-sender-tag", header, plain[:4 + m], digest)
        ensure(hmac.compare_digest(tag, mine), "sender_unverified")
    return meta, content


def edited(data, edit):
    """Section 8: the edits, in their order."""
    data = bytearray(data)
    if "truncate_to" in edit:
        del data[edit["truncate_to"]:]
    for key in ("then_append_hex", "append_hex"):
        if key in edit:
            data += bytes.fromhex(edit[key])
    if "flip_bit" in edit:
        data[edit["flip_bit"][0]] ^= 1 << edit["flip_bit"][1]
    if "remove_range" in edit:
        del data[edit["remove_range"][0]:edit["remove_range"][1]]
    if "copy_range" in edit:
        start, end, at = edit["copy_range"]
        data[at:at] = data[start:end]
    return bytes(data)


# ---------------------------------------------------------------- parts (10.5)

def assemble(inputs):
    parts = []
    for pos, data in enumerate(inputs):
        if data[:9] != b"MEDCRYPTP":
            continue
        ensure(len(data) >= 30, "part_truncated")
        ensure(data[9] == 2, "unsupported_part_version")
        index, count = int.from_bytes(data[26:28], "big"), int.from_bytes(data[28:30], "big")
        ensure(1 <= index <= count, "part_index_invalid")
        parts.append((pos, data[10:26], index, count))
    if not parts:
        ensure(len(inputs) == 1, "several_files")
        return "whole", None
    ensure(len(parts) == len(inputs), "mixed_inputs")
    _, file_id, _, count = parts[0]
    seen = {}
    for pos, fid, index, cnt in parts:
        ensure(fid == file_id, "foreign_part")
        ensure(cnt == count, "part_count_mismatch")
        ensure(index not in seen, "duplicate_part")
        seen[index] = pos
    ensure(len(seen) == count, "missing_part")
    return "parts", [seen[i] for i in range(1, count + 1)]


# ---------------------------------------------------------------- codes (1, 3.5, 9, 11.5)

# The latest expiry an invitation may carry.
MAX_EXPIRY_SECONDS = 253_402_300_799  # 3.5: 9999-12-31T23:59:59Z


def read_invite(uri):
    """3.5: the QR payload."""
    text = trim_ws(uri)
    prefix = "medcrypt://pair/v2?"
    ensure(text.startswith(prefix), "invalid")
    params = {}
    for param in text[len(prefix):].split("&"):
        ensure("=" in param, "invalid")
        key, value = param.split("=", 1)
        ensure(key not in params, "invalid")
        params[key] = pct_decode(value)
    ensure("s" in params and "e" in params, "invalid")
    secret = decode(b64url_decode, params["s"], "invalid")
    ensure(len(secret) == 32 and re.fullmatch(r"[0-9]{4}-[0-9]{2}", params["e"]), "invalid")
    ensure(valid_epoch(*parse_epoch(params["e"])), "invalid")
    name, x, bot, number = (params.get(k) or None for k in ("n", "x", "tg", "wa"))
    invisible = ("Cc", "Cf")  # control and invisible formatting characters
    ensure(name is None or (len(name) <= 100 and all(unicodedata.category(ch) not in invisible for ch in name)),
           "invalid")
    ensure("x" not in params or (re.fullmatch(r"[0-9]+", params["x"]) and int(x) <= MAX_EXPIRY_SECONDS),
           "invalid")
    ensure(bot is None or re.fullmatch(r"[A-Za-z0-9_]{5,32}", bot), "invalid")
    ensure(number is None or (re.fullmatch(r"\+?[0-9 ()-]*", number) and len(number) <= 32
                              and 5 <= sum(ch.isdigit() for ch in number) <= 15), "invalid")
    token = b64url(hkdf(secret, "medcrypt/v2/pairing-token", "", 24))
    return ("success", secret.hex(), params["e"], name or "", int(x) if x else None, bot, number, token)


def read_pairing_code(code):
    payload = read_code("medcrypt/v2/pairing-code", code, {72: 5, 64: 4})
    version, ep = payload[0], (int.from_bytes(payload[1:3], "big"), payload[3])
    ensure(version == (3 if len(payload) == 40 else 2) and valid_epoch(*ep), "invalid")
    expires = int.from_bytes(payload[4:8], "big") * 60 if version == 3 else None
    return "success", payload[-32:].hex(), ename(*ep), expires


def read_verification_code(code):
    """9.1: K(d0) || u24(d0) [|| store id]; returns (key, d0, store id or None)."""
    chars = sum(1 for ch in code if ch != "-" and ch not in WHITE_SPACE)
    label = "medcrypt/audit/v1/verification-code" if chars == 64 else "medcrypt/audit/v2/verification-code"
    payload = read_code(label, code, {72: 5, 64: 5})
    sid = payload[35:40].hex() if len(payload) == 40 else None
    return payload[:32], int.from_bytes(payload[32:35], "big"), sid


RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                     r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


def read_checkpoint(line):
    """9.4 'Reading a checkpoint line'."""
    line = trim_ws(line)
    if line.startswith("MEDCRYPT-AUDIT:v2:"):
        head, _, check = line.rpartition(":")
        ensure(re.fullmatch(r"[0-9A-Fa-f]{8}", check), "malformed")
        digest = hashlib.sha256(b"medcrypt/audit/v2/checkpoint" + head.lower().encode()).hexdigest()
        ensure(digest[:8] == check.lower(), "typo")
        fields = head[len("MEDCRYPT-AUDIT:v2:"):].split(":", 3)  # the time holds colons too
        ensure(len(fields) == 4, "malformed")
        sid, seq, mac, time = fields
        ensure(sid == "-" or re.fullmatch(r"[0-9A-Fa-f]{10}", sid), "malformed")
    elif line.startswith("MEDCRYPT-AUDIT:v1:"):
        fields = line[len("MEDCRYPT-AUDIT:v1:"):].split(":", 2)
        ensure(len(fields) == 3, "malformed")
        sid, (seq, mac, time) = "-", fields
    else:
        raise Fail("not_a_checkpoint")
    ensure(re.fullmatch(r"[0-9]{1,20}", seq) and int(seq) < 2 ** 64, "malformed")
    ensure(re.fullmatch(r"[0-9A-Fa-f]{32}", mac) and RFC3339.fullmatch(time), "malformed")
    decode(lambda t: datetime.fromisoformat(t.upper().replace("Z", "+00:00")), time, "malformed")
    return "success", None if sid == "-" else sid.lower(), int(seq), mac.lower(), time


# ---------------------------------------------------------------- shares (12.1)

GF_EXP, GF_LOG = [0] * 510, [0] * 256
_x = 1
for _i in range(255):
    GF_EXP[_i] = GF_EXP[_i + 255] = _x
    GF_LOG[_x] = _i
    _x <<= 1
    if _x & 0x100:
        _x ^= 0x11D


def gf_mul(a, b):
    return 0 if a == 0 or b == 0 else GF_EXP[GF_LOG[a] + GF_LOG[b]]


def gf_div(a, b):
    return 0 if a == 0 else GF_EXP[GF_LOG[a] - GF_LOG[b] + 255]


def read_share(text):
    text = strip_ws(text)
    prefix = "MEDCRYPT-SHARE:v1:"
    ensure(text.startswith(prefix) and ":" in text[len(prefix):], "not_a_share")
    custodian, code = text[len(prefix):].split(":", 1)
    custodian = pct_decode(custodian, "not_a_share")
    try:
        payload = read_code("medcrypt/escrow/v1/share:" + custodian, code, {136: 4})
    except Fail:
        raise Fail("checksum")
    return payload[:8], payload[8], payload[9], payload[10], payload[11:81]


def combine(texts):
    shares = [read_share(t) for t in texts]
    set_id, k, n = shares[0][:3]
    xs = []
    for sid, k2, n2, x, _ in shares:
        ensure((sid, k2, n2) == (set_id, k, n), "different_sets")
        ensure(1 <= x <= n, "bad_index")
        ensure(x not in xs, "duplicate")
        xs.append(x)
    ensure(2 <= k <= n <= 10, "bad_threshold")
    ensure(len(shares) >= k, "not_enough")
    secret = bytearray(70)
    for i, (_, _, _, xi, yi) in enumerate(shares):
        basis = 1  # Lagrange basis polynomial i at 0: prod x_j / (x_j - x_i)
        for j, xj in enumerate(xs):
            if j != i:
                basis = gf_mul(basis, gf_div(xj, xj ^ xi))
        for b in range(70):
            secret[b] ^= gf_mul(yi[b], basis)
    ensure(secret[0] == 1, "different_sets")
    return "success", secret[1:33].hex()


# ---------------------------------------------------------------- audit (9)

class DayKeys:
    """K(d) from the verification code's K(d0), stepped on demand (9.1)."""

    def __init__(self, k0, d0):
        self.d0, self.keys = d0, [k0]

    def __call__(self, day):
        while len(self.keys) <= day - self.d0:
            self.keys.append(hkdf(self.keys[-1], "medcrypt/audit/v1/sealing-key-step", str(self.d0 + len(self.keys))))
        return self.keys[day - self.d0]


KINDS = {"entry": 1, "seal": 2}


def record_mac(key, seq, day, kind, body, prev):
    return hmac256(key, b"medcrypt/audit/v1/mac", u(seq, 8), u(day, 4), u(kind, 1), u(len(body), 4), body, prev)


def open_body(a, r):
    aad = b"medcrypt/audit/v1/body" + u(r["seq"], 8) + u(r["day"], 4) + u(KINDS[r["kind"]], 1)
    body = bytes.fromhex(r["body"])
    try:
        return json.loads(AESGCM(a).decrypt(body[:12], body[12:], aad))
    except (InvalidTag, ValueError):
        return None


def is_hex(value, length=None):
    return (isinstance(value, str) and re.fullmatch(r"(?:[0-9a-f]{2})*", value) is not None
            and (length is None or len(value) == length))


def is_uint(value, bits):
    return type(value) is int and 0 <= value < 2 ** bits


def export_readable(exp):
    """9.7: 'a JSON object of this form' (hex in lower case)."""
    fields = ("format", "store_id", "day", "last_seq", "last_mac", "head_mac", "encryption_key", "records")
    if not (isinstance(exp, dict) and all(k in exp for k in fields) and isinstance(exp["records"], list)):
        return False
    return (exp["format"] == "medcrypt-audit-export/v1" and (exp["store_id"] is None or is_hex(exp["store_id"], 10))
            and is_uint(exp["day"], 32) and is_uint(exp["last_seq"], 64) and is_hex(exp["last_mac"], 64)
            and (exp["head_mac"] is None or is_hex(exp["head_mac"], 64)) and is_hex(exp["encryption_key"], 64)
            and all(isinstance(r, dict) and is_uint(r.get("seq"), 64) and is_uint(r.get("day"), 32)
                    and r.get("kind") in KINDS and is_hex(r.get("body")) and len(r["body"]) <= 2 * 65536
                    and is_hex(r.get("mac"), 64)
                    and "event" in r and (r["event"] is None or isinstance(r["event"], dict))
                    for r in exp["records"]))


def name_fault(records, i, key_day, prev, keys, a):
    """9.3: the name of a record that fails step 2 (an earlier day) or step 3."""
    r = records[i]
    kind, body, mac = KINDS[r["kind"]], bytes.fromhex(r["body"]), bytes.fromhex(r["mac"])
    key = keys(key_day)
    near = [records[j] for j in range(max(0, i - 64), min(len(records), i + 65)) if j != i]
    if r["day"] == key_day:
        for p in {n["seq"] for n in near} - {r["seq"]}:
            chains = [bytes.fromhex(n["mac"]) for n in near] + ([bytes(32)] if p == 1 else [])
            if any(record_mac(key, p, r["day"], kind, body, c) == mac for c in chains):
                return "reordered"
    if i + 1 < len(records) and records[i + 1]["day"] == key_day:
        nxt = records[i + 1]
        if record_mac(key, r["seq"], nxt["day"], KINDS[nxt["kind"]], bytes.fromhex(nxt["body"]),
                      prev) == bytes.fromhex(nxt["mac"]):
            return "inserted"
    for d in range(key_day + 1, key_day + 3661):  # a MAC "under K(d)" is that of a record of day d
        if record_mac(keys(d), r["seq"], d, kind, body, prev) == mac:
            return "wrong_day_key"
    return "modified" if open_body(a, r) is None else "inserted"


def verify_export(case):
    """9.7, then 9.3 steps 1-8 with the code, A and the file's head."""
    exp = case["export"]
    ensure(export_readable(exp), "unreadable")
    k0, d0, code_sid = read_verification_code(case["code"])
    ensure(code_sid in (None, exp["store_id"]), "foreign_code")
    checkpoint = read_checkpoint(case["checkpoint"]) if case.get("checkpoint") else None
    ensure(not checkpoint or checkpoint[1] in (None, exp["store_id"]), "foreign_checkpoint")
    day, last_seq = exp["day"], exp["last_seq"]
    ensure(d0 <= day <= d0 + 36600, "unreadable")
    ensure(exp["head_mac"] is not None, "head_mismatch")  # 9.7: always present
    records, keys, a = exp["records"], DayKeys(k0, d0), bytes.fromhex(exp["encryption_key"])
    ensure(records, "empty")
    head_mac = hmac256(keys(day), b"medcrypt/audit/v1/head", u(last_seq, 8), u(day, 4),
                       bytes.fromhex(exp["last_mac"]))
    head_ok = exp["head_mac"] is not None and hmac.compare_digest(bytes.fromhex(exp["head_mac"]), head_mac)
    if code_sid is None:  # 9.1: a first-release code that verifies neither record 1 nor the head key
        first = records[0]
        ensure(head_ok or record_mac(k0, 1, d0, KINDS[first["kind"]], bytes.fromhex(first["body"]), bytes(32))
               == bytes.fromhex(first["mac"]), "foreign_code")
    prev, expected_day, events = bytes(32), d0, []
    for i, r in enumerate(records):
        if r["seq"] > last_seq:
            break  # past the head: step 8 names it; steps 1-4 are for the log up to the head
        ensure(r["seq"] == (records[i - 1]["seq"] + 1 if i else 1), "missing")  # step 1
        event = open_body(a, r)
        repair = r["kind"] == "entry" and isinstance(event, dict) and event.get("action") == "audit_repair"
        ensure(r["day"] <= expected_day or (repair and r["day"] <= day), "day_not_sealed")  # step 2
        if r["day"] < expected_day:
            raise Fail(name_fault(records, i, expected_day, prev, keys, a))
        mac = bytes.fromhex(r["mac"])
        if record_mac(keys(r["day"]), r["seq"], r["day"], KINDS[r["kind"]], bytes.fromhex(r["body"]), prev) != mac:
            raise Fail(name_fault(records, i, r["day"], prev, keys, a))  # step 3
        ensure(event is not None, "modified")  # step 4
        events.append(event)
        prev, expected_day = mac, r["day"] + (1 if r["kind"] == "seal" else 0)
    if checkpoint:  # step 5
        at = [r for r in records if r["seq"] == checkpoint[2]]
        ensure(not at or at[0]["mac"][:32] == checkpoint[3], "checkpoint_mismatch")
        ensure(at, "truncated")
    head = [r for r in records if r["seq"] <= last_seq]  # step 6
    ensure(head and head[-1]["seq"] == last_seq and head[-1]["mac"] == exp["last_mac"] and head_ok, "head_mismatch")
    last = head[-1]  # step 7, for the log up to the head
    ensure(last["day"] == day or (last["kind"] == "seal" and last["day"] == day - 1), "not_to_day")
    ensure(len(head) == len(records), "beyond_head")  # step 8
    ensure(all(r["event"] == e for r, e in zip(records, events)), "modified")  # 9.7: the readable copies
    return "success", events


# ---------------------------------------------------------------- main

def outcome(fn, *args):
    """fn's result tuple, or the name of the error it raised."""
    try:
        return fn(*args)
    except Fail as f:
        return str(f)


def expected(case, *keys, **values):
    """A case's `expect` with the values it gives, or the error name alone."""
    if case["expect"] not in ("success", "parts", "whole"):
        return case["expect"]
    return (case["expect"],) + tuple(values[k] if k in values else case.get(k) for k in keys)


def check_v1_sealing(case, keys):
    """The other direction: the Python client's own encryption of the same
    text under the same nonce gives the same wire text."""
    wire = strip_ws(case["wire"])
    nonce = base64.b64decode(wire[len("[MEDCRYPT:v1:"):-1].split(":")[1])
    for key in keys.values():
        sealed = AESGCM(key).encrypt(nonce, case["plaintext"].encode(), case["patient_id"].encode())
        fields = (case["patient_id"].encode(), nonce, sealed[:-16], sealed[-16:])
        if wire == "[MEDCRYPT:v1:%s:%s:%s:%s]" % tuple(base64.b64encode(x).decode() for x in fields):
            return wire
    return "no match"


def check_keys(case, check):
    secret = bytes.fromhex(case["pairing_secret"])
    check(case["name"] + " token", b64url(hkdf(secret, "medcrypt/v2/pairing-token", "", 24)), case["pairing_token"])
    raw = hkdf(secret, "medcrypt/v2/safety-number", case["start_epoch"], 48)
    groups = [int.from_bytes(raw[i:i + 8], "big") % 100000 for i in range(0, 48, 8)]
    check(case["name"] + " safety", " ".join(f"{g:05d}" for g in groups), case["safety_number"])
    key = hkdf(secret, "medcrypt/v2/first-epoch-key", case["start_epoch"])
    for e in case["epochs"]:
        check(e["epoch"] + " key", key.hex(), e["epoch_key"])
        check(e["epoch"] + " hint", hkdf(key, "medcrypt/v2/key-hint", e["epoch"], 4).hex(), e["key_hint"])
        for d in DIRS.values():
            mk = hkdf(key, "medcrypt/v2/message-key", f"{e['epoch']}:{d}")
            check(e["epoch"] + " " + d, mk.hex(), e["message_key_" + d.replace("-", "_")])
        key = hkdf(key, "medcrypt/v2/epoch-ratchet", ename(*next_month(*parse_epoch(e["epoch"]))))


def main():
    failures, counts = 0, {}

    def check(name, got, want):
        nonlocal failures
        if got != want:
            failures += 1
            print(f"FAIL {name}: got {got!r}, want {want!r}")

    def cases(file, *lists):
        data = json.loads((VECTORS / file).read_text(encoding="utf-8"))
        found = [c for key in (lists or ("cases",)) for c in data[key]]
        counts[file] = counts.get(file, 0) + len(found)
        return data, found

    for case in cases("keys.json")[1]:
        check_keys(case, check)

    for case in cases("v2.json")[1]:
        check(case["name"], outcome(open_v2, case), expected(case, "plaintext", "replay_id"))

    v1_keys = {}
    for mk in cases("v1.json", "month_keys")[1]:
        salt, key = v1_month_key(mk["shared_secret"], mk["month"])
        check("v1 salt " + mk["month"], salt.hex(), mk["salt"])
        check("v1 key " + mk["month"], key.hex(), mk["key"])
        v1_keys[(mk["shared_secret"], mk["month"])] = key
    for case in cases("v1.json")[1]:
        got = outcome(lambda: ("success", open_v1(case, v1_keys)))
        check(case["name"], got, expected(case, "plaintext"))
        if case["expect"] == "success":
            check(case["name"] + " python re-encryption", check_v1_sealing(case, v1_keys), strip_ws(case["wire"]))

    files = {}
    for case in cases("attachment.json")[1]:
        data = bytes.fromhex(case["file"]) if "file" in case else edited(files[case["base"]], case["edit"])
        files[case["name"]] = data

        def run():
            meta, content = open_attachment(case, data)
            small = (content.hex(),) if "content" in case else ()
            return ("success", meta, hashlib.sha256(content).hexdigest()) + small

        small = ("content",) if "content" in case else ()
        check(case["name"], outcome(run), expected(case, "metadata", "content_sha256", *small))

    codes, _ = cases("codes.json", "invites", "pairing_codes", "recovery_codes", "verification_codes", "checkpoints")
    for case in codes["invites"]:
        check(case["name"], outcome(read_invite, case["uri"]), expected(
            case, "secret", "start_epoch", "physician_name", "expires", "telegram_bot", "whatsapp_number",
            "pairing_token"))
    for case in codes["pairing_codes"]:
        check(case["name"], outcome(read_pairing_code, case["code"]),
              expected(case, "secret", "start_epoch", "expires"))
    for case in codes["recovery_codes"]:
        got = outcome(lambda: ("success", read_code("medcrypt/store/v1/recovery-code", case["code"], {32: 4}).hex()))
        check(case["name"], got, expected(case, "key"))
    for case in codes["verification_codes"]:
        got = outcome(lambda: ("success",) + read_verification_code(case["code"]))
        check(case["name"], got, expected(case, "key", "day", "store_id", key=bytes.fromhex(case.get("key", ""))))
    for case in codes["checkpoints"]:
        check(case["name"], outcome(read_checkpoint, case["line"]),
              expected(case, "store_id", "seq", "mac_prefix", "time"))

    for case in cases("shares.json")[1]:
        check(case["name"], outcome(combine, case["shares"]), expected(case, "escrow_key"))

    for case in cases("parts.json")[1]:
        got = outcome(assemble, [bytes.fromhex(h) for h in case["inputs"]])
        check(case["name"], got, expected(case, "order"))

    audit, audit_cases = cases("audit.json")
    for case in audit_cases:
        want = expected(case, "events", events=audit["events_of_audit_ok"])
        check(case["name"], outcome(verify_export, case), want)

    total = sum(counts.values())
    print(", ".join(f"{file} {n}" for file, n in counts.items()))
    print(f"{total} cases, all pass" if not failures else f"{total} cases, {failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
