/// mimalloc rather than the C library's allocator: the gateway allocates and frees many small buffers per request
/// (headers, JSON, TLS records), where glibc's malloc spent a fifth of the request's CPU time (see README,
/// Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kopir::cli::main()
}
