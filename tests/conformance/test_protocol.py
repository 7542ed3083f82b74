"""Protocol behaviour beyond jupyter_kernel_test, through jupyter_client."""
import pytest

from conftest import texts


def test_execution_count_counts_only_stored_cells(kernel):
    first, _ = kernel.execute("1")
    silent, out = kernel.execute("2", silent=True)
    assert out == []  # silent: nothing broadcast
    unstored, _ = kernel.execute("3", store_history=False)
    second, _ = kernel.execute("4")
    assert second["execution_count"] == first["execution_count"] + 1
    assert unstored["execution_count"] == first["execution_count"]
    assert silent["status"] == "ok"


def test_user_expressions_are_answered(kernel):
    reply, _ = kernel.execute("let base = 40;", user_expressions={"answer": "base + 2", "bad": "nope_nope"})
    exprs = reply["user_expressions"]
    assert exprs["answer"]["status"] == "ok"
    assert exprs["answer"]["data"]["text/plain"] == "42"
    assert exprs["bad"]["status"] == "error"


def test_stop_on_error_aborts_queued_requests(kernel):
    failing = kernel.kc.execute('panic!("first fails")')
    queued = kernel.kc.execute("1 + 1")
    failed = kernel.shell_reply(failing, 120)
    aborted = kernel.shell_reply(queued, 120)
    assert failed["content"]["status"] == "error"
    assert failed["content"]["ename"] == "Panic"
    assert failed["content"]["evalue"] == "first fails"
    assert aborted["content"]["status"] == "aborted"
    # With stop_on_error=False the next request still runs.
    failing = kernel.kc.execute('panic!("again")', stop_on_error=False)
    queued = kernel.kc.execute("1 + 1")
    assert kernel.shell_reply(failing, 120)["content"]["status"] == "error"
    assert kernel.shell_reply(queued, 120)["content"]["status"] == "ok"


def test_output_streams_while_the_cell_runs(kernel):
    code = 'println!("early"); std::thread::sleep(std::time::Duration::from_secs(3)); println!("late");'
    reply, out = kernel.execute(code)
    assert reply["status"] == "ok"
    streams = [(t, c["text"]) for t, kind, c in out if kind == "stream"]
    early = next(t for t, text in streams if "early" in text)
    late = next(t for t, text in streams if "late" in text)
    # "early" reached the client while the cell was still sleeping.
    assert late - early > 1.5


def test_print_without_newline_appears(kernel):
    reply, out = kernel.execute('print!("a"); print!("b")')
    assert reply["status"] == "ok"
    assert texts(out) == "ab"
    assert not any(kind == "execute_result" for _, kind, _ in out)


def test_rich_displays_arrive_each_in_order(kernel):
    code = (
        'println!("EVCXR_BEGIN_CONTENT text/html\\n<i>one</i>\\nEVCXR_END_CONTENT");\n'
        'println!("between");\n'
        'println!("EVCXR_BEGIN_CONTENT text/html\\n<i>two</i>\\nEVCXR_END_CONTENT");\n'
        '"value"'
    )
    reply, out = kernel.execute(code)
    kinds = [(kind, c.get("data", {}).get("text/html") or c.get("text") or c.get("data", {}).get("text/plain"))
             for _, kind, c in out]
    assert kinds == [
        ("display_data", "<i>one</i>"),
        ("stream", "between\n"),
        ("display_data", "<i>two</i>"),
        ("execute_result", '"value"'),
    ]


def test_compile_errors_are_one_error(kernel):
    reply, out = kernel.execute("let a: u8 = undefined_one + undefined_two;")
    errors = [c for _, kind, c in out if kind == "error"]
    assert len(errors) == 1 and len(out) == 1
    assert reply["ename"] == "CompilationError"
    assert "undefined_one" in reply["evalue"] and "undefined_two" in reply["evalue"]
    assert any("undefined_one" in line for line in reply["traceback"])


def test_panic_is_an_error_with_its_message(kernel):
    reply, out = kernel.execute('let v: Vec<i32> = vec![]; v[3]')
    assert reply["status"] == "error"
    assert reply["ename"] == "Panic"
    assert "index out of bounds" in reply["evalue"]
    assert [kind for _, kind, _ in out] == ["error"]


def test_evcxr_commands_reach_the_cell_and_quit_is_refused(kernel):
    kernel.execute("let kept_value = 7;")
    reply, out = kernel.execute(":vars")
    result = [c for _, kind, c in out if kind == "execute_result"]
    assert "kept_value" in result[0]["data"]["text/plain"]
    reply, out = kernel.execute(":quit")
    assert reply["status"] == "error" and reply["ename"] == "UnsupportedCommand"
    reply, _ = kernel.execute("kept_value")
    assert reply["status"] == "ok"  # the kernel and its variables survived


def test_kernel_info_on_control_and_comms(kernel):
    msg = kernel.kc.session.msg("kernel_info_request")
    kernel.kc.control_channel.send(msg)
    reply = kernel.kc.get_control_msg(timeout=10)
    assert reply["content"]["implementation"] == "slurmbook"
    assert reply["content"]["language_info"]["name"] == "Rust"
    msg_id = kernel.kc.comm_info()
    assert kernel.shell_reply(msg_id)["content"] == {"status": "ok", "comms": {}}
    open_msg = kernel.kc.session.msg("comm_open", {"comm_id": "c1", "target_name": "nobody", "data": {}})
    kernel.kc.shell_channel.send(open_msg)
    while True:
        m = kernel.kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == open_msg["header"]["msg_id"] and m["msg_type"] == "comm_close":
            assert m["content"]["comm_id"] == "c1"
            break


def test_completion_uses_code_point_offsets(kernel):
    code = 'let é = "é"; let über_value = 1; über_v'
    msg_id = kernel.kc.complete(code, len(code))
    reply = kernel.shell_reply(msg_id)["content"]
    assert "über_value" in reply["matches"]
    assert reply["cursor_end"] == len(code)
    assert reply["cursor_start"] == len(code) - len("über_v")


def test_inspect_shows_magic_help_and_variable_types(kernel):
    msg_id = kernel.kc.inspect("%graph", 3)
    reply = kernel.shell_reply(msg_id)["content"]
    assert reply["found"] and "%graph" in reply["data"]["text/plain"]
    kernel.execute("let inspected_thing: Vec<u8> = vec![1];")
    msg_id = kernel.kc.inspect("inspected_thing", 3)
    reply = kernel.shell_reply(msg_id)["content"]
    assert reply["found"]
    assert "Vec<u8>" in reply["data"]["text/plain"]


CLEAR = "application/vnd.slurmbook.clear-output+json"
CLEAR_LINE = f'println!("EVCXR_BEGIN_CONTENT {CLEAR}\\n{{{{\\"wait\\": false}}}}\\nEVCXR_END_CONTENT");'


@pytest.mark.parametrize("where, code, after", [
    ("last output", 'println!("before");\n' + CLEAR_LINE, ""),
    ("only output", CLEAR_LINE, ""),
    ("mid-cell", 'println!("before");\n' + CLEAR_LINE + '\nprintln!("after");', "after\n"),
    ("before a value", 'println!("before");\n' + CLEAR_LINE + "\n1 + 2", ""),
])
def test_clear_output_is_a_clear_output_message_wherever_it_is(kernel, where, code, after):
    """The documented clear-output display clears the cell as the last
    output, the only output, in the middle, and before the cell's value."""
    reply, outputs = kernel.execute(code)
    assert reply["status"] == "ok", (where, reply)
    types = [t for _, t, _ in outputs]
    assert "clear_output" in types, (where, outputs)
    assert all(CLEAR not in c.get("data", {}) for _, _, c in outputs), (where, outputs)
    seen_after = [(t, c) for _, t, c in outputs[types.index("clear_output") + 1:]]
    shown = "".join(c["text"] for t, c in seen_after if t == "stream")
    assert shown == after, (where, outputs)
    if where == "before a value":
        results = [c for t, c in seen_after if t == "execute_result"]
        assert [r["data"]["text/plain"] for r in results] == ["3"], outputs
