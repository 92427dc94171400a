#!/usr/bin/env python3
"""Independent check of wire-spec/vectors/ against wire-spec/README.md.

Written from the spec alone, with the `cryptography` package that the deployed
Python client uses (AESGCM, PBKDF2HMAC, HKDF). Not part of CI (it needs that
package); run it by hand when the spec or the vectors change:

    python3 wire-spec/tools/check_vectors.py
"""
import base64
import hashlib
import hmac
import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
DIRS = {1: "physician-to-patient", 2: "patient-to-physician"}


def hkdf(ikm, label, context, length=32):
    info = label.encode() + b":" + context.encode()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(ikm)


def month_start(y, m):
    return datetime(y, m, 1, tzinfo=timezone.utc)


def next_month(y, m):
    return (y + 1, 1) if m == 12 else (y, m + 1)


def prev_month(y, m):
    return (y - 1, 12) if m == 1 else (y, m - 1)


def ename(y, m):
    return f"{y:04d}-{m:02d}"


def parse_epoch(s):
    y, m = s.split("-")
    return int(y), int(m)


class Fail(Exception):
    pass


def chain_key(secret, start, target):
    key, cur = hkdf(secret, "medcrypt/v2/first-epoch-key", ename(*start)), start
    while cur < target:
        cur = next_month(*cur)
        key = hkdf(key, "medcrypt/v2/epoch-ratchet", ename(*cur))
    return key


def open_v2(case):
    text = "".join(ch for ch in case["wire"] if not ch.isspace())
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
    if not text.startswith("MEDCRYPT:v2:"):
        m = re.match(r"^\[?MEDCRYPT:(v[^:]+):", text)
        if m:
            raise Fail("unsupported_version")
        raise Fail("damaged" if text.lstrip("[").startswith("MEDCRYPT:") else "malformed")
    b64 = text[len("MEDCRYPT:v2:"):]
    if not b64 or not re.fullmatch(r"[A-Za-z0-9_-]*", b64) or len(b64) % 4 == 1:
        raise Fail("damaged")
    body = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    if base64.urlsafe_b64encode(body).decode().rstrip("=") != b64:
        raise Fail("damaged")  # non-canonical trailing bits
    content, checksum = body[:-4], body[-4:]
    expect = hashlib.sha256(b"medcrypt/v2/wire-checksum" + b"MEDCRYPT:v2:" + content).digest()[:4]
    if len(body) < 4 or expect != checksum:
        raise Fail("damaged")
    if len(content) < 13:
        raise Fail("malformed")
    header, nonce, ct = content[:13], content[13:25], content[25:]
    if header[0] != 2:
        raise Fail("unsupported_version")
    y, m, d = int.from_bytes(header[1:3], "big"), header[3], header[4]
    seq, hint = int.from_bytes(header[5:9], "big"), header[9:13]
    if not 1 <= m <= 12 or d not in DIRS:
        raise Fail("malformed")
    if len(ct) < 48 or (len(ct) - 16) % 32:
        raise Fail("malformed")
    # Acceptance window.
    cur = (now.year, now.month)
    ep = (y, m)
    if ep < cur:
        if now >= month_start(*next_month(*ep)) + timedelta(days=7):
            raise Fail("expired")
    elif ep > cur:
        if now < month_start(*ep) - timedelta(minutes=10):
            raise Fail("not_yet_valid")
    start = parse_epoch(case["start_epoch"])
    if ep < start:
        raise Fail("unknown_key_hint")
    key = chain_key(bytes.fromhex(case["pairing_secret"]), start, ep)
    if hkdf(key, "medcrypt/v2/key-hint", ename(*ep), 4) != hint:
        raise Fail("unknown_key_hint")
    mkey = hkdf(key, "medcrypt/v2/message-key", f"{ename(*ep)}:{DIRS[d]}")
    try:
        pt = AESGCM(mkey).decrypt(nonce, ct, header)
    except InvalidTag:
        raise Fail("authentication_failed")
    inbound = 1 if case["receiver"] == "patient" else 2
    if d != inbound:
        raise Fail("reflected")
    kind, length = pt[0], int.from_bytes(pt[1:5], "big")
    if 5 + length > len(pt) or any(pt[5 + length:]):
        raise Fail("malformed")
    if kind != 1:
        raise Fail("unsupported_payload")
    return pt[5:5 + length].decode(), {"epoch": ename(*ep), "direction": DIRS[d], "sequence": seq}


def v1_month_key(secret, month):
    salt = hmac.new(secret.encode(), month.encode(), hashlib.sha256).digest()[:16]
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=600_000)
    return salt, kdf.derive(secret.encode())


def open_v1(case, keys):
    text = "".join(ch for ch in case["wire"] if not ch.isspace())
    if not (text.startswith("[MEDCRYPT:v1:") and text.endswith("]")):
        raise Fail("malformed")
    fields = text[len("[MEDCRYPT:v1:"):-1].split(":")
    if len(fields) != 4:
        raise Fail("malformed")
    try:
        pid, nonce, ct, tag = (base64.b64decode(f, validate=True) for f in fields)
    except ValueError:
        raise Fail("damaged")
    if pid.decode() != case["patient_id"]:
        raise Fail("unknown_key_hint")
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
    months = [(now.year, now.month)]
    if now < month_start(now.year, now.month) + timedelta(days=7):
        months.append(prev_month(now.year, now.month))
    for mo in months:
        name = ename(*mo)
        if (case["shared_secret"], name) not in keys:
            keys[(case["shared_secret"], name)] = v1_month_key(case["shared_secret"], name)[1]
        try:
            return AESGCM(keys[(case["shared_secret"], name)]).decrypt(nonce, ct + tag, pid).decode()
        except InvalidTag:
            continue
    raise Fail("authentication_failed")


def padme(length):
    length = max(length, 4096)
    e = length.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


def open_attachment(case, data):
    if data[:8] != b"MEDCRYPT" or len(data) < 10 or data[8:9] != b"F":
        raise Fail("not_attachment")
    version = data[9]
    if version not in (2, 3):
        raise Fail("unsupported_version")
    fixed_len = 14 if version == 2 else 22
    if len(data) < fixed_len:
        raise Fail("truncated")
    y, m, n = int.from_bytes(data[10:12], "big"), data[12], data[fixed_len - 1]
    announced = int.from_bytes(data[13:21], "big") if version == 3 else None
    if not 1 <= n <= 16 or not 1 <= m <= 12:
        raise Fail("malformed")
    if announced is not None and (announced < 4096 or padme(announced) != announced):
        raise Fail("malformed")
    now = datetime.fromisoformat(case["now"].replace("Z", "+00:00"))
    if (y, m) < (now.year, now.month) and now >= month_start(*next_month(y, m)) + timedelta(days=7):
        raise Fail("expired")
    hlen = fixed_len + 65 * n + 32
    header = data[:hlen]
    v = f"medcrypt/v{version}"
    key = chain_key(bytes.fromhex(case["pairing_secret"]), parse_epoch(case["start_epoch"]), (y, m))
    hint = hkdf(key, "medcrypt/v2/key-hint", ename(y, m), 4)
    inbound = 1 if case["receiver"] == "patient" else 2
    file_key, mine, outcome = None, None, "unknown_key_hint"
    for i in range(n):
        st = header[fixed_len + 65 * i: fixed_len + 65 * (i + 1)]
        if st[:4] != hint:
            continue
        wrap = hkdf(key, "medcrypt/v2/file-wrap-key", f"{ename(y, m)}:{DIRS[st[4]]}")
        try:
            fk = AESGCM(wrap).decrypt(st[5:17], st[17:65], v.encode() + b"/file-key" + header[:fixed_len] + st[:5])
        except InvalidTag:
            outcome = "authentication_failed"
            continue
        mac = hmac.new(hkdf(fk, v + "/file-header-mac", ""), header[:-32], hashlib.sha256).digest()
        if mac != header[-32:]:
            raise Fail("authentication_failed")
        if st[4] != inbound:
            raise Fail("reflected")
        file_key, mine = fk, (i, hkdf(key, "medcrypt/v2/file-sender-key", f"{ename(y, m)}:{DIRS[st[4]]}"))
        break
    if file_key is None:
        raise Fail(outcome)
    if version == 2 and n > 1:
        raise Fail("sender_unprovable")
    aead = AESGCM(hkdf(file_key, v + "/file-payload", ""))
    aad = header[-32:] if version == 3 else b""
    body, pos, i, plain = data[hlen:], 0, 0, b""
    chunks = last_len = None
    if announced is not None:
        chunks = -(-announced // 65536)
        last_len = announced - (chunks - 1) * 65536
    nonce = lambda c, f: c.to_bytes(11, "big") + bytes([f])
    while True:
        last_expected = chunks is not None and i == chunks - 1
        want = (last_len if last_expected else 65536) + 16
        piece = body[pos:pos + want]
        at_end = pos + len(piece) >= len(body)
        if version == 3 and len(piece) < want:
            raise Fail("truncated")
        if len(piece) == 16 and at_end and i > 0:
            raise Fail("empty_final_chunk")
        if (chunks is not None and len(piece) < want) or len(piece) <= 16:
            raise Fail("truncated")
        last = last_expected if chunks is not None else at_end
        try:
            chunk = aead.decrypt(nonce(i, last), piece, aad)
        except InvalidTag:
            if chunks is None and len(piece) < 4096 + 16:
                raise Fail("truncated")
            for c, f, kind in [(i, not last, "truncated" if last else "appended_data")]:
                try:
                    aead.decrypt(nonce(c, f), piece, aad)
                    raise Fail(kind)
                except InvalidTag:
                    pass
            raise Fail("chunk_modified")
        plain += chunk
        pos += len(piece)
        if chunks is None:
            mlen = int.from_bytes(chunk[:4], "big")
            meta = json.loads(chunk[4:4 + mlen])
            total = padme(4 + mlen + meta["size"] + 32)
            chunks = -(-total // 65536)
            last_len = total - (chunks - 1) * 65536
        i += 1
        if last:
            if pos < len(body):
                raise Fail("appended_data")
            break
    mlen = int.from_bytes(plain[:4], "big")
    meta = json.loads(plain[4:4 + mlen])
    tags = n if version == 3 else 0
    total = padme(4 + mlen + meta["size"] + 32 + 32 * tags)
    content = plain[4 + mlen: 4 + mlen + meta["size"]]
    end = 4 + mlen + meta["size"]
    digest = plain[end: end + 32]
    if (hashlib.sha256(content).digest() != digest or len(plain) != total
            or (announced is not None and announced != total) or any(plain[end + 32 + 32 * tags:])):
        raise Fail("malformed")
    if version == 3:
        index, sender_key = mine
        tag = plain[end + 32 + 32 * index: end + 64 + 32 * index]
        expected = hmac.new(sender_key, b"medcrypt/v3/file-sender-tag" + header + plain[:4 + mlen] + digest,
                            hashlib.sha256).digest()
        if not hmac.compare_digest(tag, expected):
            raise Fail("sender_unverified")
    return meta, content


def main():
    failures = 0

    def check(name, got, want):
        nonlocal failures
        if got != want:
            failures += 1
            print(f"FAIL {name}: got {got!r}, want {want!r}")

    keys = json.loads((VECTORS / "keys.json").read_text())
    for case in keys["cases"]:
        secret = bytes.fromhex(case["pairing_secret"])
        token = base64.urlsafe_b64encode(hkdf(secret, "medcrypt/v2/pairing-token", "", 24)).decode().rstrip("=")
        check(case["name"] + " token", token, case["pairing_token"])
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

    for case in json.loads((VECTORS / "v2.json").read_text())["cases"]:
        try:
            text, rid = open_v2(case)
            check(case["name"], ("success", text, rid), (case["expect"], case.get("plaintext"), case.get("replay_id")))
        except Fail as f:
            check(case["name"], str(f), case["expect"])

    v1 = json.loads((VECTORS / "v1.json").read_text())
    cache = {}
    for mk in v1["month_keys"]:
        salt, key = v1_month_key(mk["shared_secret"], mk["month"])
        check("v1 salt " + mk["month"], salt.hex(), mk["salt"])
        check("v1 key " + mk["month"], key.hex(), mk["key"])
        cache[(mk["shared_secret"], mk["month"])] = key
    for case in v1["cases"]:
        try:
            check(case["name"], ("success", open_v1(case, cache)), (case["expect"], case.get("plaintext")))
            # The other direction: the Python client's own encryption of the
            # same text under the same nonce must give the same wire text.
            fields = case["wire"][len("[MEDCRYPT:v1:"):-1].split(":")
            nonce = base64.b64decode(fields[1])
            for (secret, month), key in cache.items():
                sealed = AESGCM(key).encrypt(nonce, case["plaintext"].encode(), case["patient_id"].encode())
                wire = "[MEDCRYPT:v1:%s:%s:%s:%s]" % tuple(
                    base64.b64encode(x).decode()
                    for x in (case["patient_id"].encode(), nonce, sealed[:-16], sealed[-16:]))
                if wire == case["wire"]:
                    break
            else:
                check(case["name"] + " python re-encryption", "no match", case["wire"])
        except Fail as f:
            check(case["name"], str(f), case["expect"])

    files = {}
    attachments = json.loads((VECTORS / "attachment.json").read_text())["cases"]
    for case in attachments:
        if "file" in case:
            data = bytearray(bytes.fromhex(case["file"]))
        else:
            data, edit = bytearray(files[case["base"]]), case["edit"]
            if "truncate_to" in edit:
                del data[edit["truncate_to"]:]
            for key in ("then_append_hex", "append_hex"):
                if key in edit:
                    data += bytes.fromhex(edit[key])
            if "flip_bit" in edit:
                data[edit["flip_bit"][0]] ^= 1 << edit["flip_bit"][1]
        files[case["name"]] = bytes(data)
        try:
            meta, content = open_attachment(case, bytes(data))
            got = ("success", meta, hashlib.sha256(content).hexdigest())
            check(case["name"], got, (case["expect"], case.get("metadata"), case.get("content_sha256")))
        except Fail as f:
            check(case["name"], str(f), case["expect"])

    total = len(keys["cases"]) + len(v1["cases"]) + len(attachments) + len(json.loads((VECTORS / "v2.json").read_text())["cases"])
    print(f"{total} vector cases checked, {failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
