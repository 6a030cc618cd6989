//! The origin's memory allocator: mimalloc, told to give freed pages back to the OS at once.
//!
//! glibc's malloc keeps each login's 19 MiB Argon2 block in a per-thread arena (measured:
//! 21 MiB at start, ~190 MiB after 24 logins), so the origin uses mimalloc. mimalloc in turn
//! keeps freed pages for its purge delay (1 s by default) and purges them only on a later call
//! into the allocator: under load the pages freed in the last second stay resident, and when
//! the load stops they stay until the next request. Measured on the bench stack (10,000
//! secrets, reads spread over them, 10 s per run): resident memory after 32 / 128 / 32
//! connections was 86 / 123 / 63 MiB with the default delay and 64 / 80 / 57 MiB with none;
//! the price, ~200 `madvise` calls and ~1,500 page faults a second at 4,600 reads/s, did not
//! show in the read rate.
//!
//! An operator's `MIMALLOC_PURGE_DELAY` still wins. Setting the option is the one `unsafe`
//! call of the workspace: mimalloc's options are C globals behind an FFI function.

use std::ffi::c_long;

use libmimalloc_sys::mi_option_t;
use mimalloc::MiMalloc;

#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

/// The environment variable mimalloc reads its purge delay from (milliseconds).
const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same in its v2 and v3), which
/// libmimalloc-sys does not name.
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// Makes mimalloc purge freed pages as soon as they are free, unless `MIMALLOC_PURGE_DELAY`
/// says otherwise. Call first in `main`, before any other thread starts.
pub fn return_freed_pages_at_once() {
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        set_purge_delay_ms(0);
    }
}

#[expect(unsafe_code, reason = "mimalloc's options are set through its C API")]
fn set_purge_delay_ms(ms: c_long) {
    // SAFETY: `mi_option_set` stores one integer in mimalloc's option table, takes no
    // pointers, and accepts any option index below its last (15 is `purge_delay`). mimalloc
    // documents it as not thread safe: `main` calls this before starting any other thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(unsafe_code, reason = "reads back mimalloc's option through its C API")]
    fn purge_delay_ms() -> c_long {
        // SAFETY: `mi_option_get` reads one integer from mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    // The test harness has started other threads, which `main` never has when it sets the
    // option; a plain store to an integer the allocator reads is what the call does either way.
    #[test]
    fn freed_pages_are_purged_at_once_unless_the_environment_sets_a_delay() {
        let from_env = std::env::var(PURGE_DELAY_ENV).ok();
        return_freed_pages_at_once();
        match from_env {
            // mimalloc read the variable at process start; it must still be in force.
            Some(ms) => assert_eq!(Some(purge_delay_ms()), ms.trim().parse().ok()),
            None => assert_eq!(purge_delay_ms(), 0),
        }
    }

    #[test]
    fn the_option_index_names_the_purge_delay() {
        // libmimalloc-sys names the option after it; a renumbered table would move both.
        assert_eq!(
            libmimalloc_sys::mi_option_use_numa_nodes,
            MI_OPTION_PURGE_DELAY + 1
        );
    }
}
