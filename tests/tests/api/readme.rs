//! The README's API examples, run as written: every `sh` and `python` block of its "Using the
//! API" section, in order, as one bash script against a fresh stack through the edge (python
//! blocks with the SDK's interpreter). No example is shown that this test does not run; an
//! example that breaks (a renamed field, a changed status) fails here.

use std::process::Command;

use oxvault_tests::{TestStack, repo_root};

/// The README section whose examples are run.
const SECTION: &str = "## Using the API";

/// The fenced blocks of `section` in `markdown`: (language, code), in order.
fn code_blocks(markdown: &str, section: &str) -> Vec<(String, String)> {
    let start = markdown
        .find(&format!("\n{section}\n"))
        .unwrap_or_else(|| panic!("README has no `{section}` section"));
    let body = &markdown[start + section.len() + 2..];
    let body = body.find("\n## ").map_or(body, |end| &body[..end]);
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in body.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(language)) => open = Some((language.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, code)), None) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block in `{section}`");
    blocks
}

/// One bash script that runs the blocks in order; python blocks go through `python`.
fn script(blocks: &[(String, String)], python: &str) -> String {
    let mut script = String::from("set -euo pipefail\n");
    for (index, (language, code)) in blocks.iter().enumerate() {
        script.push_str(&format!("echo '--- example {index} ({language})'\n"));
        match language.as_str() {
            "sh" | "bash" => script.push_str(code),
            "python" => {
                script.push_str(&format!("'{python}' - <<'OXVAULT_PYTHON_EXAMPLE'\n"));
                script.push_str(code);
                script.push_str("OXVAULT_PYTHON_EXAMPLE\n");
            }
            // Output shown to the reader, not run.
            "" | "text" | "json" => {}
            other => panic!(
                "README block in `{SECTION}` with language `{other}`: run it or mark it text"
            ),
        }
    }
    script
}

#[test]
fn the_sections_blocks_are_found_in_order_and_run_through_the_right_interpreter() {
    let markdown = "# x\n## Using the API\ntext\n```sh\necho one\n```\n```python\nprint(2)\n```\n\
                    ```text\nout\n```\n## Next\n```sh\nnot this\n```\n";
    let blocks = code_blocks(markdown, SECTION);
    assert_eq!(
        blocks,
        vec![
            ("sh".to_owned(), "echo one\n".to_owned()),
            ("python".to_owned(), "print(2)\n".to_owned()),
            ("text".to_owned(), "out\n".to_owned()),
        ]
    );
    let script = script(&blocks, "/py");
    assert!(script.contains("echo one\n"));
    assert!(
        script.contains("'/py' - <<'OXVAULT_PYTHON_EXAMPLE'\nprint(2)\nOXVAULT_PYTHON_EXAMPLE\n")
    );
    assert!(!script.contains("out\n") && !script.contains("not this"));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_api_example_in_the_readme_runs_against_the_stack() {
    let python = std::env::var("OXVAULT_SDK_PYTHON")
        .expect("OXVAULT_SDK_PYTHON must name a python with the oneclaw SDK (scripts/test.sh)");
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let blocks = code_blocks(&readme, SECTION);
    assert!(
        blocks.iter().any(|(language, _)| language == "sh")
            && blocks.iter().any(|(language, _)| language == "python"),
        "the API section shows both curl and SDK examples"
    );
    let stack = TestStack::shared().await;
    let script = script(&blocks, &python);
    let edge = stack.edge_base().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("-c")
            .arg(script)
            // The examples read the address from here, as a reader would set it.
            .env("OXVAULT_URL", edge)
            .output()
            .expect("run bash")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "a README example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What the examples print: the version written, the value read back by curl and by the
    // agent through the SDK, and the agent's refusal outside its policy.
    for expected in [
        "\"version\": 1",
        "\nsk_live_example\n",
        "agent read: sk_live_example",
        "\"status\": 403",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}
