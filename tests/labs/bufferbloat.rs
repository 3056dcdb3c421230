//! Lab bufferbloat (book/src/lab-bufferbloat.md).
