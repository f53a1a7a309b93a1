//! Random Redis key prefix per test. (Filled in by the queue work.)
