// Batches allocate and free many small strings, on two threads: mimalloc does that several
// times faster than the system allocator (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    longshore::cli::main()
}
