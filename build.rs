//! Rebuilds when a migration is added or edited: `embed_migrations!` reads `migrations/` at
//! compile time, and cargo would not otherwise notice a new directory there.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
