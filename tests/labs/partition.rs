//! Lab partition (book/src/lab-partition.md).
