//! Lab seed (book/src/lab-seed.md).
