import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel


class Kernel:
    """A real slurmbook kernel reached through jupyter_client."""

    def __init__(self):
        self.km, self.kc = start_new_kernel(kernel_name="slurmbook", startup_timeout=120)
        self.kc.allow_stdin = True

    def execute(self, code, timeout=180, stdin_answers=None, **kw):
        """Runs a cell; returns (reply content, [(arrival time, msg_type, content)])."""
        msg_id = self.kc.execute(code, allow_stdin=stdin_answers is not None, **kw)
        return self.collect(msg_id, timeout, stdin_answers)

    def collect(self, msg_id, timeout=180, stdin_answers=None):
        outputs = []
        deadline = time.time() + timeout
        while True:
            if stdin_answers is not None:
                try:
                    req = self.kc.get_stdin_msg(timeout=0.05)
                    if req["msg_type"] == "input_request":
                        outputs.append((time.time(), "input_request", req["content"]))
                        self.kc.input(stdin_answers.pop(0))
                except queue.Empty:
                    pass
            try:
                msg = self.kc.get_iopub_msg(timeout=0.05)
            except queue.Empty:
                assert time.time() < deadline, f"no idle for {msg_id} in {timeout}s"
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_input":
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    break
                continue
            outputs.append((time.time(), msg["msg_type"], msg["content"]))
        reply = self.shell_reply(msg_id, timeout)
        return reply["content"], outputs

    def shell_reply(self, msg_id, timeout=60):
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def stop(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel():
    k = Kernel()
    yield k
    k.stop()


def texts(outputs, name="stdout"):
    return "".join(c["text"] for _, t, c in outputs if t == "stream" and c["name"] == name)
