//! Lab swarm (book/src/lab-swarm.md).
