//! Keeps one test stack up for a test binary (see `shared.rs` in this crate's library): starts
//! a healthy stack, prints where its parts answer as one JSON line, and tears it down (edge,
//! origin, database, token) when its stdin closes, which is when the test binary ends.

#![allow(clippy::expect_used)]

use std::io::{Read, Write};

use oxvault_tests::TestStack;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stack = runtime.block_on(TestStack::start());
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", stack.addresses().to_json()).expect("print the addresses");
    stdout.flush().expect("flush the addresses");
    drop(stdout);
    // Returns at end of file or on an error, both meaning the test binary is gone.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(stack);
}
