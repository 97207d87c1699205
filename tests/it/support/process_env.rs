//! The test binary's process environment, set once before `main`, while the
//! process has one thread.
//!
//! Tests run on parallel threads of one process, and changing the
//! environment while another thread reads it (SQLite, the resolver and the
//! TLS library call `getenv`) is undefined behaviour: `std::env::set_var` is
//! sound only before any other thread exists. So the few variables the
//! tests need are set here, from an ELF constructor (`.init_array`, which
//! the C runtime calls before `main`), and no test changes the environment
//! afterwards; a child process that needs something else gets it through
//! `Command::env`.

/// Static credentials for the S3 tests' moto server (it accepts any), for
/// the in-process S3 client and for the `claudit` processes they start. A
/// developer's own AWS session must not leak into those tests.
extern "C" fn set_test_environment() {
    // SAFETY: runs before `main`, while the process has a single thread.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::remove_var("AWS_SESSION_TOKEN");
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static SET_TEST_ENVIRONMENT: extern "C" fn() = set_test_environment;
