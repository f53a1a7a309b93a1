//! Isolated Postgres database per test. (Filled in by the foundation work.)
