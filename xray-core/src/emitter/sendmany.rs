//! Sending many datagrams on a connected UDP socket with as few system calls, and as little
//! kernel work per datagram, as possible.
//!
//! On Linux one `sendmmsg(2)` call sends up to [`PER_CALL`] datagrams: on a loopback daemon it
//! measured 3.2–3.4 µs of CPU per 600-byte datagram against 4.2–4.4 µs for one `send` each
//! (BENCHMARKS.md). Most of that is the kernel's path for one packet, which `sendmmsg` still
//! walks once per datagram. UDP segmentation offload (`UDP_SEGMENT`, Linux 4.18 and later)
//! walks it once for a whole run: the run is handed over as one buffer plus a segment size,
//! and the kernel cuts it into datagrams of that size at the last moment (on loopback, at the
//! receiving socket). Every datagram but the last must then be exactly the segment size, so
//! documents of similar length are grouped and the shorter ones padded with spaces after the
//! document, which JSON ignores (the daemon forwards the body as it is; the X-Ray API parses
//! it as JSON). Measured on loopback: about 1 µs of CPU per datagram instead of 3–5 µs.
//! Elsewhere each datagram is one `send`.

use std::io;
use std::net::UdpSocket;

/// Datagrams handed to the kernel per call.
pub(crate) const PER_CALL: usize = 64;

/// What happened to a run of datagrams.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Datagrams the kernel took (which says nothing of whether they arrived).
    pub(crate) sent: u64,
    /// Datagrams not sent, with the last error seen.
    pub(crate) failed: u64,
    /// The positions, among the datagrams given to [`Sender::send_all`], of those not sent,
    /// in ascending order.
    pub(crate) failed_at: Vec<usize>,
    pub(crate) last_error: Option<io::Error>,
    /// Failures other than reports of earlier datagrams (which say nothing about the datagram
    /// they land on): the daemon's address may have changed.
    pub(crate) other_errors: u64,
    /// ICMP port-unreachable answers to datagrams sent earlier (nobody listens at the daemon's
    /// port). Where the socket queues ICMP errors (Linux), every answer is counted: one per
    /// datagram, as far as the daemon's host answers each (hosts rate-limit ICMP; a run sent
    /// with segmentation offload that is refused before being cut up, as on loopback, gets
    /// one answer). Elsewhere one per report, which may stand for several answers.
    pub(crate) refused: u64,
}

impl Outcome {
    fn fail(&mut self, index: usize, e: io::Error) {
        self.failed += 1;
        self.failed_at.push(index);
        if e.kind() != io::ErrorKind::ConnectionRefused {
            self.other_errors += 1;
        }
        self.last_error = Some(e);
    }
}

/// Times one datagram (or one segmented run) is sent again after a send call reported an
/// earlier datagram's fate instead of sending it: each report is cleared by being made, so a
/// further one needs a further ICMP answer; the bound only keeps a flood of them from holding
/// the thread.
const MAX_RESENDS: u32 = 4;

/// Most ICMP errors read off the socket's error queue at once.
const MAX_QUEUED_ERRORS: usize = 1024;

/// Most datagrams one segmented send may carry (the kernel's `UDP_MAX_SEGMENTS` is 64 on the
/// oldest kernels that offer it, 128 on newer ones).
const MAX_SEGMENTS: usize = 64;

/// Most bytes one segmented send may carry: a UDP payload's limit, with room to spare.
const MAX_SEGMENTED_BYTES: usize = 65_000;

/// Most padding added to one datagram.
const MAX_PAD: usize = 1024;

/// The padding: spaces, which JSON allows after a document.
static PAD: [u8; MAX_PAD] = [b' '; MAX_PAD];

/// Sending state for one socket.
#[derive(Debug)]
pub(crate) struct Sender {
    /// Largest datagram segmentation offload may carry on this socket's path (its MTU less
    /// the IP and UDP headers); 0 when it is off, unsupported, or was refused once.
    segment_limit: usize,
    /// The kernel queues the ICMP errors answering this socket's datagrams (`IP_RECVERR`),
    /// one per datagram, for [`Sender::take_errors`] to read.
    error_queue: bool,
}

impl Sender {
    /// For a socket connected to the daemon; `offload` false keeps one datagram per send.
    pub(crate) fn new(socket: &UdpSocket, offload: bool) -> Self {
        Self {
            segment_limit: if offload { segment_limit(socket) } else { 0 },
            error_queue: enable_error_queue(socket),
        }
    }

    /// Whether runs of datagrams currently go out as one segmented send.
    #[cfg(test)]
    pub(crate) fn offloads(&self) -> bool {
        self.segment_limit > 0
    }

    /// Sends every datagram in order on `socket`, which must be connected. A datagram the
    /// kernel turns down is counted and skipped; the rest are still sent. Then reads the ICMP
    /// answers that came back so far, counting the refusals.
    pub(crate) fn send_all(&mut self, socket: &UdpSocket, datagrams: &[Vec<u8>]) -> Outcome {
        let mut out = Outcome::default();
        if self.segment_limit == 0 || datagrams.len() < 2 {
            let all: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
            self.send_each(socket, &all, 0, &mut out);
        } else {
            for run in plan(datagrams, self.segment_limit) {
                let (range, segmented) = match run {
                    Run::Segmented(r) => (r, self.segment_limit > 0),
                    Run::Alone(r) => (r, false),
                };
                let first = range.start;
                let parts: Vec<&[u8]> = datagrams[range].iter().map(Vec::as_slice).collect();
                if segmented && self.send_segmented(socket, &parts, &mut out) {
                    continue;
                }
                self.send_each(socket, &parts, first, &mut out);
            }
        }
        self.take_errors(socket, &mut out);
        out
    }

    /// One segmented send of `parts`; false when the run must go one datagram at a time.
    fn send_segmented(&mut self, socket: &UdpSocket, parts: &[&[u8]], out: &mut Outcome) -> bool {
        let mut resends = 0;
        loop {
            let e = match send_run(socket, parts) {
                Ok(()) => {
                    out.sent += parts.len() as u64;
                    return true;
                }
                Err(e) => e,
            };
            // A report of an earlier datagram's fate: nothing of this run went out; again.
            if self.reported(socket, &e, &mut resends, out) {
                continue;
            }
            // Turned down: the run goes one datagram at a time, which also tells which
            // datagram (if any) is at fault. Runs of datagrams that each fit the path are
            // turned down only when the kernel or the device cannot segment: then stop trying.
            if is_unsupported(&e) {
                tracing::debug!(error = %e, "UDP segmentation offload unavailable; sending datagrams one by one");
                self.segment_limit = 0;
            }
            return false;
        }
    }

    /// Sends `datagrams` (which start at position `first` of those given to
    /// [`send_all`](Self::send_all)) in order, [`PER_CALL`] per system call, recording what
    /// happened in `out`.
    fn send_each(
        &mut self,
        socket: &UdpSocket,
        datagrams: &[&[u8]],
        first: usize,
        out: &mut Outcome,
    ) {
        let mut at = 0;
        let mut resends = 0;
        while at < datagrams.len() {
            let take = (datagrams.len() - at).min(PER_CALL);
            match send_some(socket, &datagrams[at..at + take]) {
                Ok(0) => {
                    // Not expected for a non-empty run; never loop on it.
                    out.fail(
                        first + at,
                        io::Error::other("the kernel accepted no datagram"),
                    );
                    at += 1;
                    resends = 0;
                }
                Ok(n) => {
                    let n = n.min(take);
                    out.sent += n as u64;
                    at += n;
                    resends = 0;
                }
                // The datagram that got the report was not sent: it goes again.
                Err(e) if self.reported(socket, &e, &mut resends, out) => {}
                Err(e) => {
                    out.fail(first + at, e);
                    at += 1;
                    resends = 0;
                }
            }
        }
    }

    /// Whether the failed send call with `e` sent nothing because it reported the fate of
    /// earlier datagrams instead (or was interrupted), so that the same datagrams go again;
    /// at most [`MAX_RESENDS`] times in a row.
    ///
    /// A connected UDP socket keeps the last ICMP error answering its datagrams and fails the
    /// next send call with it, clearing it. "Refused" is only ever such a report (port
    /// unreachable: nobody listens at the daemon's port). Where the kernel also queues each
    /// ICMP error, an error on the queue means the failure was a report, whatever its kind.
    fn reported(
        &mut self,
        socket: &UdpSocket,
        e: &io::Error,
        resends: &mut u32,
        out: &mut Outcome,
    ) -> bool {
        if e.kind() == io::ErrorKind::Interrupted {
            return true;
        }
        let refused = e.kind() == io::ErrorKind::ConnectionRefused;
        let icmp = self.take_errors(socket, out);
        if refused && icmp == 0 {
            // Not queued (no error queue here, or it overflowed): count the report itself.
            out.refused += 1;
        }
        if (refused || icmp > 0) && *resends < MAX_RESENDS {
            *resends += 1;
            return true;
        }
        false
    }

    /// Reads the ICMP answers that came back since the last send and returns how many were
    /// refusals (0 where the kernel does not queue them).
    pub(crate) fn take_refused(&mut self, socket: &UdpSocket) -> u64 {
        let mut out = Outcome::default();
        self.take_errors(socket, &mut out);
        out.refused
    }

    /// Reads the ICMP errors queued on `socket`, adding the refusals to `out`; returns how many
    /// ICMP errors of any kind there were.
    fn take_errors(&mut self, socket: &UdpSocket, out: &mut Outcome) -> u64 {
        if !self.error_queue {
            return 0;
        }
        match read_error_queue(socket) {
            Ok(errors) => {
                out.refused += errors.refused;
                errors.icmp
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the UDP socket's error queue; counting refusals as reported");
                self.error_queue = false;
                0
            }
        }
    }
}

/// Splits datagrams, in order, into runs for segmented sends: a run holds consecutive
/// datagrams whose lengths lie close enough that padding costs little (within an eighth of
/// the shortest, between 64 and [`MAX_PAD`] bytes) and fits the kernel's limits; a datagram
/// that starts no run of two goes alone.
fn plan(datagrams: &[Vec<u8>], limit: usize) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut i = 0;
    while i < datagrams.len() {
        let first = datagrams[i].len();
        let (mut shortest, mut longest) = (first, first);
        let mut j = i + 1;
        if first <= limit {
            while j < datagrams.len() && j - i < MAX_SEGMENTS {
                let len = datagrams[j].len();
                let (lo, hi) = (shortest.min(len), longest.max(len));
                if hi > limit
                    || hi - lo > (lo / 8).clamp(64, MAX_PAD)
                    || hi * (j - i + 1) > MAX_SEGMENTED_BYTES
                {
                    break;
                }
                (shortest, longest) = (lo, hi);
                j += 1;
            }
        }
        match runs.last_mut() {
            Some(Run::Alone(range)) if j - i < 2 && range.end == i => range.end = j,
            _ if j - i < 2 => runs.push(Run::Alone(i..j)),
            _ => runs.push(Run::Segmented(i..j)),
        }
        i = j;
    }
    runs
}

/// Consecutive datagrams sent the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Run {
    /// One segmented send.
    Segmented(std::ops::Range<usize>),
    /// One datagram per buffer (`sendmmsg`).
    Alone(std::ops::Range<usize>),
}

/// Sends a prefix of `datagrams` (at most [`PER_CALL`]); returns how many were sent. An error
/// means the first one was not sent.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn send_some(socket: &UdpSocket, datagrams: &[&[u8]]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;

    let n = datagrams.len().min(PER_CALL);
    // Built for the `n` datagrams only (zeroing 64 headers for one datagram cost more than
    // the send). `iov` is complete before `msgs` takes pointers into it and is not touched
    // again, so those pointers stay valid.
    let iov: Vec<libc::iovec> = datagrams[..n]
        .iter()
        .map(|d| libc::iovec {
            // The kernel only reads through `iov_base` for a send; `*mut` is the C type's.
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter()
        .map(|v| {
            // SAFETY: `mmsghdr` is a plain C struct of integers and pointers, for which all-zero
            // bytes are a valid value (null pointers with zero lengths: no address, no control
            // data, no flags).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = std::ptr::from_ref(v).cast_mut();
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: the descriptor is open: it is borrowed from `socket` for the whole call. `msgs`
    // holds `n` initialized headers; each points at one `iovec` of `iov`, which points at the
    // bytes of one datagram. All of these are owned by this frame or borrowed in `datagrams`,
    // and outlive the call; the kernel reads the datagrams, the iovecs and the headers, and
    // writes only each header's `msg_len`, inside `msgs`, which we hold mutably (the iovecs
    // are never written through their `*mut`). `msg_name` is null, which a connected socket
    // allows. `n <= PER_CALL` fits a `c_uint`.
    let r = unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn send_some(socket: &UdpSocket, datagrams: &[&[u8]]) -> io::Result<usize> {
    match datagrams.first() {
        Some(d) => socket.send(d).map(|_| 1),
        None => Ok(0),
    }
}

/// Errors by which the kernel says it cannot segment on this socket (old kernel, a device
/// without checksum offload, a path whose MTU shrank).
fn is_unsupported(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::EIO | libc::ENOPROTOOPT | libc::EOPNOTSUPP | libc::EMSGSIZE)
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = e;
        true
    }
}

/// The largest datagram segmentation offload may carry on `socket`'s path: the path's MTU
/// less the IP and UDP headers, or 0 where the offload does not exist or the MTU is unknown.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn segment_limit(socket: &UdpSocket) -> usize {
    use std::os::fd::AsRawFd;

    let Ok(peer) = socket.peer_addr() else {
        return 0;
    };
    let (level, name, headers) = if peer.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_MTU, 20 + 8)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU, 40 + 8)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the descriptor is open, borrowed from `socket` for the call. `mtu` is a live,
    // writable `c_int` and `len` holds its exact size, so the kernel writes at most that many
    // bytes into it and updates `len`, both owned by this frame.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::from_mut(&mut mtu).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return 0;
    }
    usize::try_from(mtu)
        .unwrap_or(0)
        .saturating_sub(headers)
        .min(MAX_SEGMENTED_BYTES)
}

#[cfg(not(target_os = "linux"))]
fn segment_limit(_socket: &UdpSocket) -> usize {
    0
}

/// Asks the kernel to queue the ICMP errors answering `socket`'s datagrams (`IP_RECVERR`,
/// `IPV6_RECVERR`), so that each refusal is counted, not only the one a later send reports
/// (`sendmmsg` drops reports that land after its first datagram). Returns whether it did.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn enable_error_queue(socket: &UdpSocket) -> bool {
    use std::os::fd::AsRawFd;

    let Ok(local) = socket.local_addr() else {
        return false;
    };
    let (level, name) = if local.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    };
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is open, borrowed from `socket` for the call. The kernel reads
    // exactly `size_of::<c_int>()` bytes from `on`, a live `c_int` owned by this frame.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn enable_error_queue(_socket: &UdpSocket) -> bool {
    false
}

/// What [`read_error_queue`] found.
#[derive(Debug, Default, Clone, Copy)]
struct QueuedErrors {
    /// ICMP errors of any kind.
    icmp: u64,
    /// Of which port unreachable (`ECONNREFUSED`).
    refused: u64,
}

/// Reads (without waiting) the errors queued on `socket` (see [`enable_error_queue`]), at most
/// [`MAX_QUEUED_ERRORS`]. Reading them also clears the error the next send would report.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn read_error_queue(socket: &UdpSocket) -> io::Result<QueuedErrors> {
    use std::os::fd::AsRawFd;

    let mut found = QueuedErrors::default();
    for _ in 0..MAX_QUEUED_ERRORS {
        // The start of the datagram the error answers (not needed: truncated), and room for
        // the `sock_extended_err` control message with the offender's address after it.
        let mut quoted = [0u8; 64];
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: quoted.as_mut_ptr().cast(),
            iov_len: quoted.len(),
        };
        // SAFETY: `msghdr` is a plain C struct of integers and pointers; all-zero bytes are a
        // valid value (no address, no iovecs, no control data, no flags).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = std::ptr::from_mut(&mut iov);
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: the descriptor is open, borrowed from `socket` for the call. `msg` points at
        // one `iovec` describing `quoted` (64 writable bytes) and at `control` (128 writable
        // bytes, 8-aligned) with their exact lengths; all are owned by this frame and outlive
        // the call. The kernel writes at most those lengths into them, and updates
        // `msg_controllen` and `msg_flags` inside `msg`, which we hold mutably. `msg_name` is
        // null: no address is written. `MSG_DONTWAIT` keeps the call from blocking.
        let r = unsafe {
            libc::recvmsg(
                socket.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(found),
                _ => return Err(e),
            }
        }
        let want = std::mem::size_of::<libc::sock_extended_err>();
        // SAFETY: `msg` is the header the kernel just filled: `msg_control` points at
        // `control` and `msg_controllen` is the length of the control messages it wrote there
        // (at most the 128 bytes given; a message that did not fit is cut, its `cmsg_len`
        // never reaching past them). `CMSG_FIRSTHDR` and `CMSG_NXTHDR` only return pointers
        // to whole `cmsghdr`s inside that length, or null, and `control` is aligned for
        // `cmsghdr`. The header's fields are read through that pointer; the data is read
        // unaligned, and only when the message's length covers a whole `sock_extended_err`
        // (a plain C struct of integers, valid for any bytes) after its header (`CMSG_LEN`
        // only computes that length).
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let (level, kind, len) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len);
                let ours = (level == libc::IPPROTO_IP && kind == libc::IP_RECVERR)
                    || (level == libc::IPPROTO_IPV6 && kind == libc::IPV6_RECVERR);
                if ours && len >= libc::CMSG_LEN(want as libc::c_uint) as _ {
                    let ee = std::ptr::read_unaligned(
                        libc::CMSG_DATA(cmsg).cast::<libc::sock_extended_err>(),
                    );
                    if matches!(
                        ee.ee_origin,
                        libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6
                    ) {
                        found.icmp += 1;
                        if ee.ee_errno == libc::ECONNREFUSED as u32 {
                            found.refused += 1;
                        }
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
    Ok(found)
}

#[cfg(not(target_os = "linux"))]
fn read_error_queue(_socket: &UdpSocket) -> io::Result<QueuedErrors> {
    Ok(QueuedErrors::default())
}

/// Sends `parts` (two or more) as one buffer that the kernel cuts into one datagram per part:
/// the longest part's length is the segment size, and every part but the last is padded to
/// it (the kernel lets only the last datagram be shorter).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn send_run(socket: &UdpSocket, parts: &[&[u8]]) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let segment = parts.iter().map(|p| p.len()).max().unwrap_or(0);
    // `plan` never builds runs that break these limits; if one did, the run would go one
    // datagram at a time (an error that is not the kernel's keeps the offload on).
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "run outside the planned limits",
        )
    };
    let Ok(segment_u16) = u16::try_from(segment) else {
        return Err(too_large());
    };
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(parts.len() * 2);
    let iovec = |b: &[u8]| libc::iovec {
        // The kernel only reads through `iov_base` for a send; `*mut` is the C type's.
        iov_base: b.as_ptr() as *mut libc::c_void,
        iov_len: b.len(),
    };
    for (k, part) in parts.iter().enumerate() {
        let pad = if k + 1 == parts.len() {
            0
        } else {
            segment - part.len()
        };
        if pad > MAX_PAD {
            return Err(too_large());
        }
        iov.push(iovec(part));
        if pad > 0 {
            iov.push(iovec(&PAD[..pad]));
        }
    }
    // Room for one control message carrying a `u16`, aligned for `cmsghdr`.
    let mut control = [0u64; 4];
    // SAFETY: `msghdr` is a plain C struct of integers and pointers; all-zero bytes are a
    // valid value (no address, no iovecs, no control data, no flags).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: `CMSG_SPACE` only computes a size from its argument.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as libc::c_uint) };
    if space as usize > std::mem::size_of_val(&control) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    msg.msg_controllen = space as _;
    // SAFETY: `msg.msg_control` points at `control`, 32 bytes aligned to 8, and
    // `msg_controllen` (24 on 64-bit Linux, 16 on 32-bit) fits in it (checked above), so `CMSG_FIRSTHDR`
    // returns a non-null pointer to the start of `control`, aligned for `cmsghdr`. The header
    // and the two data bytes `CMSG_DATA` points at lie inside `control`; the data is written
    // unaligned, as `CMSG_DATA` does not promise alignment for `u16`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as libc::c_uint) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment_u16);
    }
    // SAFETY: the descriptor is open, borrowed from `socket` for the call. `msg` points at
    // `iov` (whose entries point at bytes borrowed in `parts` or at the static `PAD`) and at
    // `control`; all outlive the call and the kernel only reads them for a send. `msg_name`
    // is null, which a connected socket allows.
    let r = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
fn send_run(_socket: &UdpSocket, _parts: &[&[u8]]) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sends as the emitter does, with or without segmentation offload.
    fn send_all(tx: &UdpSocket, datagrams: &[Vec<u8>]) -> Outcome {
        Sender::new(tx, false).send_all(tx, datagrams)
    }

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (tx, rx)
    }

    #[test]
    fn sends_every_datagram_in_order_across_several_calls() {
        let (tx, rx) = pair();
        let n = PER_CALL * 2 + 7;
        let datagrams: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("datagram {i}").into_bytes())
            .collect();
        let out = send_all(&tx, &datagrams);
        assert_eq!(out.sent, n as u64);
        assert_eq!(out.failed, 0);
        let mut buf = [0u8; 64];
        for (i, want) in datagrams.iter().enumerate() {
            let len = rx
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("datagram {i}: {e}"));
            assert_eq!(&buf[..len], &want[..]);
        }
    }

    #[test]
    fn a_datagram_the_kernel_refuses_is_skipped_and_the_rest_still_go() {
        let (tx, rx) = pair();
        // Larger than any UDP datagram can be: EMSGSIZE for that one only.
        let datagrams = vec![b"a".to_vec(), vec![0u8; 70_000], b"c".to_vec()];
        let out = send_all(&tx, &datagrams);
        assert_eq!((out.sent, out.failed), (2, 1));
        assert!(out.last_error.is_some());
        assert_eq!(out.other_errors, 1);
        let mut buf = [0u8; 8];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"a");
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"c");
    }

    #[test]
    fn a_closed_port_is_reported_as_refused_and_nothing_is_skipped_for_it() {
        closed_port_then_listener(false);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn with_offload_a_closed_port_is_reported_as_refused_and_nothing_is_skipped_for_it() {
        closed_port_then_listener(true);
    }

    fn closed_port_then_listener(offload: bool) {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(addr).unwrap();
        let mut sender = Sender::new(&tx, offload);
        let datagrams: Vec<Vec<u8>> = (0..20).map(|_| b"x".to_vec()).collect();
        let mut refused = 0;
        for _ in 0..50 {
            let out = sender.send_all(&tx, &datagrams);
            assert_eq!((out.sent, out.failed), (20, 0), "{out:?}");
            refused += out.refused;
            if refused > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            refused > 0,
            "ICMP port unreachable never surfaced as ECONNREFUSED"
        );
        assert_eq!(
            sender.offloads(),
            offload,
            "a refusal does not turn offload off"
        );
        // Whoever binds the port now gets every datagram, the first one included.
        let rx = UdpSocket::bind(addr).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let out = sender.send_all(&tx, &[b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(out.sent, 2, "{out:?}");
        let mut buf = [0u8; 16];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(buf[..len].trim_ascii_end(), b"first");
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"second");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn each_datagram_a_closed_port_refuses_is_counted_once_and_none_is_counted_failed() {
        every_refusal_counted(false);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn with_offload_each_datagram_a_closed_port_refuses_is_counted_once() {
        every_refusal_counted(true);
    }

    /// Runs of datagrams to a closed loopback port: `sendmmsg` drops the reports that land
    /// after its first datagram, and the last datagrams' answers arrive after the last send;
    /// the error queue still accounts for every one (loopback is exempt from ICMP rate limits).
    #[cfg(target_os = "linux")]
    fn every_refusal_counted(offload: bool) {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(addr).unwrap();
        let mut sender = Sender::new(&tx, offload);
        let (mut sent, mut refused) = (0, 0);
        for round in 0..3 {
            let datagrams: Vec<Vec<u8>> = (0..10)
                .map(|i| format!("round {round} datagram {i}").into_bytes())
                .collect();
            let out = sender.send_all(&tx, &datagrams);
            assert_eq!((out.failed, out.other_errors), (0, 0), "{out:?}");
            sent += out.sent;
            refused += out.refused;
        }
        assert_eq!(sent, 30, "every datagram reached the kernel");
        // The last answers may come after the last send: read until 200 ms pass quietly.
        let mut quiet_since = std::time::Instant::now();
        while refused < 30 && quiet_since.elapsed() < Duration::from_millis(200) {
            std::thread::sleep(Duration::from_millis(5));
            let more = sender.send_all(&tx, &[]).refused;
            if more > 0 {
                refused += more;
                quiet_since = std::time::Instant::now();
            }
        }
        if offload {
            // On loopback a segmented run meets the closed port before it is cut up, and is
            // answered once: one refusal per run at least, each counted.
            assert!((3..=30).contains(&refused), "{refused}");
        } else {
            assert_eq!(refused, 30, "one refusal per datagram, none twice");
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(sender.send_all(&tx, &[]).refused, 0);
    }

    #[test]
    fn plan_keeps_order_and_groups_runs_of_close_lengths() {
        let sized =
            |lens: &[usize]| -> Vec<Vec<u8>> { lens.iter().map(|&n| vec![b'x'; n]).collect() };
        let shape = |lens: &[usize], limit| {
            plan(&sized(lens), limit)
                .into_iter()
                .map(|r| match r {
                    Run::Segmented(r) => format!("S{}..{}", r.start, r.end),
                    Run::Alone(r) => format!("A{}..{}", r.start, r.end),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        // 500..=560 lie within 64 bytes of each other; 900 does not; 70 000 exceeds the limit.
        assert_eq!(
            shape(&[560, 500, 530, 900, 70_000, 505, 510], 1472),
            "S0..3 A3..5 S5..7"
        );
        // Lone datagrams next to each other share one `sendmmsg`.
        assert_eq!(shape(&[100, 900, 100], 1472), "A0..3");
        assert_eq!(shape(&[], 1472), "");
        // At most MAX_SEGMENTS per run, and at most MAX_SEGMENTED_BYTES.
        assert_eq!(shape(&[100; 150], 1472), "S0..64 S64..128 S128..150");
        assert_eq!(shape(&[1400; 60], 1472), "S0..46 S46..60");
        // The slack grows with the length (an eighth), up to MAX_PAD.
        assert_eq!(shape(&[8000, 8900, 9000], 65_000), "S0..3");
        assert_eq!(shape(&[8000, 9100], 65_000), "A0..2");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn offloaded_runs_arrive_as_separate_datagrams_with_only_spaces_added() {
        let (tx, rx) = pair();
        let mut sender = Sender::new(&tx, true);
        assert!(
            sender.offloads(),
            "loopback offers UDP segmentation offload"
        );
        // JSON documents of varied lengths, and one too large to segment.
        let mut datagrams: Vec<Vec<u8>> = (0..80)
            .map(|i| {
                format!(
                    "{{\"n\":{i},\"pad\":\"{}\"}}",
                    "y".repeat(400 + (i * 7) % 90)
                )
                .into_bytes()
            })
            .collect();
        datagrams.push(format!("{{\"big\":\"{}\"}}", "z".repeat(20_000)).into_bytes());
        // Read while sending, and send fewer than the ~160 such datagrams a default receive
        // buffer holds.
        let n = datagrams.len();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65_536];
            for _ in 0..n {
                let len = rx.recv(&mut buf).expect("every datagram arrives");
                got.push(buf[..len].to_vec());
            }
            got
        });
        let out = sender.send_all(&tx, &datagrams);
        assert_eq!((out.sent, out.failed), (81, 0), "{out:?}");
        assert!(sender.offloads());
        let got: Vec<Vec<u8>> = reader
            .join()
            .unwrap()
            .into_iter()
            .map(|body| {
                let doc_end = body.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
                assert!(body.len() - doc_end <= MAX_PAD, "padding is bounded");
                let _: serde_json::Value =
                    serde_json::from_slice(&body).expect("padded JSON still parses");
                body[..doc_end].to_vec()
            })
            .collect();
        assert_eq!(got, datagrams, "each datagram whole, in order");
    }
}
