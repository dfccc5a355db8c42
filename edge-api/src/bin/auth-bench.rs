//! Native timings of the sign-in hot paths (see edge-api/AUTH.md).

fn main() {
    println!("auth-bench: not built yet");
}
