"""Random frames on a live kernel's shell and control sockets: garbage,
unsigned and wrongly signed messages, and correctly signed messages with
broken JSON or contents of the wrong shape. The kernel must keep answering
`kernel_info` (and run code) throughout; correctly signed requests of a
known type with a bad content get an error reply, not silence.

The seed is printed (pytest -s) and can be fixed with SLURMBOOK_FUZZ_SEED.
"""
import hashlib
import hmac
import json
import os
import random
import uuid

import zmq

ROUNDS = 400
CHECK_EVERY = 50


def _signed(key, header, parent=b"{}", metadata=b"{}", content=b"{}"):
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in (header, parent, metadata, content):
        mac.update(part)
    return [b"<IDS|MSG>", mac.hexdigest().encode(), header, parent, metadata, content]


def _header(msg_type):
    return json.dumps({
        "msg_id": uuid.uuid4().hex, "session": "fuzz", "username": "fuzz",
        "date": "2026-01-01T00:00:00Z", "msg_type": msg_type, "version": "5.3",
    }).encode()


def _random_bytes(rng, n=64):
    return bytes(rng.getrandbits(8) for _ in range(rng.randrange(n)))


BAD_CONTENTS = [
    b"{", b"[]", b"null", b"42", b'"text"', b'{"code": 5}', b'{"code": null}',
    b'{"code": "1", "silent": "yes"}', b'{"code": "1", "user_expressions": []}',
    b'{"cursor_pos": -1, "code": "x"}', b'{"cursor_pos": 99999, "code": "x"}',
    b'{"hist_access_type": 7}', b'{"target_name": 3}', b'{"value": {}}',
    b'{"code": "\\ud800"}',
]
TYPES = ["execute_request", "kernel_info_request", "complete_request", "inspect_request",
         "is_complete_request", "history_request", "comm_info_request", "comm_open",
         "comm_msg", "input_reply", "interrupt_request", "no_such_request", ""]


def _fuzz_message(rng, key):
    kind = rng.randrange(6)
    if kind == 0:  # garbage frames, maybe with a delimiter
        frames = [_random_bytes(rng) for _ in range(rng.randrange(1, 8))]
        if rng.random() < 0.5:
            frames.insert(rng.randrange(len(frames) + 1), b"<IDS|MSG>")
        return frames
    if kind == 1:  # a well-formed message, wrongly signed
        frames = _signed(b"not-the-key", _header(rng.choice(TYPES)), content=b'{"code": "1"}')
        return frames
    if kind == 2:  # too few frames after the delimiter
        return _signed(key, _header("kernel_info_request"))[: rng.randrange(1, 5)]
    if kind == 3:  # signed, a broken header
        return _signed(key, rng.choice([b"{", b"[]", b'{"msg_type": 1}', _random_bytes(rng)]))
    if kind == 4:  # signed, a known type with a bad content or metadata
        content = rng.choice(BAD_CONTENTS)
        metadata = rng.choice([b"{}", b"[]", b"{", b'{"cellId": 5}'])
        return _signed(key, _header(rng.choice(TYPES)), metadata=metadata, content=content)
    # signed, a random parent header
    return _signed(key, _header("kernel_info_request"), parent=rng.choice([b"[]", b"{", b'{"msg_id": 3}']))


def test_random_frames_never_stop_the_kernel(kernel):
    seed = int(os.environ.get("SLURMBOOK_FUZZ_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"fuzz seed {seed}")
    rng = random.Random(seed)
    km = kernel.km
    key = km.session.key
    ctx = zmq.Context.instance()
    sockets = []
    for port in (km.shell_port, km.control_port):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"{km.transport}://{km.ip}:{port}")
        sockets.append(s)
    try:
        for round_ in range(ROUNDS):
            frames = _fuzz_message(rng, key)
            rng.choice(sockets).send_multipart(frames)
            if (round_ + 1) % CHECK_EVERY == 0:
                msg_id = kernel.kc.kernel_info()
                reply = kernel.shell_reply(msg_id, timeout=30)
                assert reply["content"]["status"] == "ok", f"seed {seed}, round {round_}"
        # Signed requests of a known type with a bad content get an error
        # reply on the socket they came from.
        # (Replies to the fuzzed requests may still arrive: the one to this
        # request is the one whose parent is it.)
        s = sockets[0]
        header = _header("execute_request")
        msg_id = json.loads(header)["msg_id"]
        s.send_multipart(_signed(key, header, content=b'{"code": 5}'))
        content = None
        while content is None:
            assert s.poll(30_000), f"seed {seed}: no reply to a malformed execute_request"
            reply = s.recv_multipart()
            delim = reply.index(b"<IDS|MSG>")
            if json.loads(reply[delim + 3]).get("msg_id") == msg_id:
                content = json.loads(reply[delim + 5])
        assert content["status"] == "error", content
        # And the kernel still computes.
        result, _ = kernel.execute("6 * 7")
        assert result["status"] == "ok"
    finally:
        for s in sockets:
            s.close()
