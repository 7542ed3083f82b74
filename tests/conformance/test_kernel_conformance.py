"""jupyter_kernel_test's full conformance suite against the slurmbook kernel.

Every sample attribute is set, so no check of the suite is skipped."""
import unittest

import jupyter_kernel_test as jkt

CLEAR = "application/vnd.slurmbook.clear-output+json"


class SlurmbookKernelTests(jkt.KernelTests):
    kernel_name = "slurmbook"
    language_name = "Rust"
    file_extension = ".rs"

    code_hello_world = 'println!("hello, world");'
    code_stderr = 'eprintln!("something went wrong");'

    completion_samples = [
        {"text": "%lsm", "matches": {"%lsmagic"}},
        {"text": "%%ass", "matches": {"%%asset"}},
        {"text": "let zebra_count = 1; zebra_c", "matches": {"zebra_count"}},
    ]
    complete_code_samples = ["1 + 2", "fn f() -> i32 { 1 }", 'let s = "{";', "%assets"]
    incomplete_code_samples = ["fn f() {", "let v = vec![1,", 'let s = "open']
    invalid_code_samples = ["fn f() { )", "}", "let v = [1, 2);"]

    code_page_something = "%help materialize"
    code_generate_error = 'let x: i32 = "not a number";'
    code_execute_result = [
        {"code": "1 + 2", "result": "3"},
        {"code": '"hi".to_string()', "result": '"hi"'},
        {"code": "vec![1, 2, 3]", "result": "[1, 2, 3]"},
    ]
    code_display_data = [
        {
            "code": 'println!("EVCXR_BEGIN_CONTENT text/html\\n<b>bold</b>\\nEVCXR_END_CONTENT");\nprintln!("done");',
            "mime": "text/html",
        },
    ]
    code_history_pattern = "1 +*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "%materialize"
    code_clear_output = (
        f'println!("EVCXR_BEGIN_CONTENT {CLEAR}\\n{{{{\\"wait\\":false}}}}\\nEVCXR_END_CONTENT");\n'
        'println!("fresh");'
    )


class SlurmbookIopubWelcome(jkt.IopubWelcomeTests):
    kernel_name = "slurmbook"
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
