//! Lab gossip (book/src/lab-gossip.md).
