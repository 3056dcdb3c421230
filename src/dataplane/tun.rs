//! The TUN device of a lab: the only file that touches it. Opened from a thread inside the lab
//! namespace (the device is created there); reads and writes raw IPv4 packets, non-blocking.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::unistd;

/// The two ioctls of a TUN device, with libc's request numbers (right on every architecture).
mod ioctl {
    nix::ioctl_readwrite_bad!(
        /// TUNSETIFF: attaches the descriptor to the device named in the `ifreq`.
        tun_set_iff,
        libc::TUNSETIFF,
        libc::ifreq
    );
    nix::ioctl_write_int_bad!(
        /// TUNSETOFFLOAD: the offloads (`TUN_F_*`) the reader accepts.
        tun_set_offload,
        libc::TUNSETOFFLOAD
    );
}

pub struct TunDevice {
    fd: OwnedFd,
    name: String,
    offload: bool,
}

impl TunDevice {
    /// Creates TUN device `name` in the calling thread's network namespace. With `offload`,
    /// every packet carries a 10-byte virtio-net header, checksums may be left to the kernel,
    /// and TCP may hand over segmentation-offload super-packets (see `set_tso`).
    pub fn create(name: &str, offload: bool) -> io::Result<TunDevice> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad TUN name"));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/net/tun: {e}")))?;
        let fd = OwnedFd::from(file);
        let flags = libc::IFF_TUN | libc::IFF_NO_PI | if offload { libc::IFF_VNET_HDR } else { 0 };
        let mut req = libc::ifreq {
            ifr_name: [0; libc::IFNAMSIZ],
            // TUNSETIFF reads only the flags of the union.
            ifr_ifru: libc::__c_anonymous_ifr_ifru {
                ifru_flags: flags as libc::c_short,
            },
        };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads an `ifreq` whose name is NUL-terminated (shorter than
        // IFNAMSIZ, checked above) and writes the name back into it; `req` outlives the call.
        unsafe { ioctl::tun_set_iff(fd.as_raw_fd(), &mut req) }?;
        let tun = TunDevice {
            fd,
            name: name.to_string(),
            offload,
        };
        if offload {
            tun.set_tso(true)?;
        }
        Ok(tun)
    }

    /// Whether packets carry a virtio-net header.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Lets the kernel hand over TCP super-packets (up to 64 KiB) or makes it segment them to
    /// the MTU first. Checksum offload stays on either way. Only with `offload`.
    pub fn set_tso(&self, on: bool) -> io::Result<()> {
        let flags = libc::TUN_F_CSUM
            | if on {
                libc::TUN_F_TSO4 | libc::TUN_F_TSO6
            } else {
                0
            };
        // SAFETY: TUNSETOFFLOAD takes the flags as its integer argument and no pointer; the
        // flags are small enough for a C int, as C callers pass them.
        unsafe { ioctl::tun_set_offload(self.fd.as_raw_fd(), flags as libc::c_int) }?;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet; `WouldBlock` when none is waiting.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(unistd::read(&self.fd, buf)?)
    }

    /// Hands one packet back to the kernel, which delivers it locally.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        Ok(unistd::write(&self.fd, packet)?)
    }

    /// The same, for a packet in pieces (one write: the device takes it as one packet).
    pub fn write_vectored(&self, pieces: &[io::IoSlice<'_>]) -> io::Result<usize> {
        Ok(nix::sys::uio::writev(&self.fd, pieces)?)
    }
}

impl AsFd for TunDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TunDevice {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
