//! What the writers' tests share: a `Write` whose bytes the test can read afterwards.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// A `Write` whose bytes the test can still read after handing it over.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Everything written so far.
pub fn text(out: &Shared) -> String {
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}
