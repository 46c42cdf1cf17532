//! What the writer and the compactor share: opening (and creating) a Delta table with a safe
//! commit mode, writing data files with their `add` actions, and reading a key column back.
//!
//! Keeping this in one crate means both binaries take exactly the same path to storage, so a
//! table the writer can commit to is one the compactor can safely rewrite, and vice versa.

pub mod aws;
pub mod cli;
pub mod error;
pub mod files;
pub mod lock;
pub mod log;
pub mod memory;
pub mod open;
pub mod protocol;

pub use error::LakeError;
pub use lock::CommitLock;
pub use open::{StorageConfig, open_or_create, open_table, table_url};
pub use protocol::check_writable;
