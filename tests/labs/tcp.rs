//! Lab tcp (book/src/lab-tcp.md).
