//! Host bindings of the Spin interfaces the edge-api component imports
//! (`wit/spin.wit`): every function is `trappable` (a host fault traps the
//! request's instance, never the host) and the synchronous WIT functions are
//! Rust `async` so they can wait on Postgres or the disk.

wasmtime::component::bindgen!({
    path: "wit",
    world: "wasm-host:spin/spin-host",
    imports: { default: async | trappable },
    with: {
        "spin:postgres/postgres.connection": super::pg::PgConnection,
        "spin:postgres/postgres.connection-builder": super::pg::PgBuilder,
        "spin:key-value/key-value.store": super::kv::KvStore,
    },
});

pub use spin::key_value::key_value;
pub use spin::postgres::postgres;
pub use spin::variables::variables;
