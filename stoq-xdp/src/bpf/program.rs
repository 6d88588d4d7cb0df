//! The STOQ filter, assembled instruction by instruction, and [`Program`],
//! a loaded XDP program.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::XdpAction;
use super::error::{LoadError, TestRunError};
use super::insn::{Alu, Asm, Cond, Insn, Reg, Size};
use super::map::XskMap;
use super::sys;

/// The most UDP ports the filter compares against.
pub const MAX_PORTS: usize = 8;

/// `BPF_PROG_TYPE_XDP` (`enum bpf_prog_type`, include/uapi/linux/bpf.h).
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` (`enum bpf_attach_type`, include/uapi/linux/bpf.h).
pub(super) const BPF_XDP: u32 = 37;
/// `BPF_FUNC_redirect_map` (`enum bpf_func_id`, include/uapi/linux/bpf.h).
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `offsetof(struct xdp_md, …)` (include/uapi/linux/bpf.h).
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;
/// Ethernet header, and with one VLAN tag.
const ETH_HLEN: i32 = 14;
const ETH_VLAN_HLEN: i32 = 18;
const ETH_P_IP: i32 = 0x0800;
const ETH_P_IPV6: i32 = 0x86dd;
const ETH_P_8021Q: i32 = 0x8100;
const ETH_P_8021AD: i32 = 0x88a8;
const IPPROTO_UDP: i32 = 17;
/// IPv4's More Fragments flag and fragment offset (RFC 791 section 3.1).
const IP_MF_OFFSET: i32 = 0x3fff;
/// The longest frame ever redirected: what one 4 KiB UMEM frame holds
/// after the 256 bytes of `XDP_PACKET_HEADROOM` a copy-mode receive
/// reserves. The filter's own limit (`max_frame`) is the interface's MTU
/// plus its Ethernet header and a VLAN tag, at most this.
pub const MAX_REDIRECT_LEN: u32 = 4096 - 256;

/// Verifier log buffer for a failed load; our programs need a few KiB.
const LOG_SIZE: usize = 256 * 1024;
/// How much of the log's end an error carries.
const LOG_TAIL_LINES: usize = 40;

/// What the filter does with a STOQ packet whose queue has no socket in
/// the XSKMAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSocket {
    /// `XDP_PASS`, for production: the kernel hands it to STOQ's companion
    /// UDP socket.
    Pass,
    /// `XDP_DROP`, for tests: a match is then visible with an empty map.
    Drop,
}

impl NoSocket {
    fn action(self) -> XdpAction {
        match self {
            NoSocket::Pass => XdpAction::Pass,
            NoSocket::Drop => XdpAction::Drop,
        }
    }
}

/// The STOQ filter for `ports` (1 to [`MAX_PORTS`], none 0; duplicates are
/// ignored), redirecting into the XSKMAP with descriptor `xskmap`.
///
/// The filter redirects UDP datagrams to STOQ's ports into the AF_XDP
/// socket of the receive queue they arrived on, and passes everything else
/// to the kernel:
///
/// ```text
/// Ethernet [+ one 802.1Q/802.1ad tag]
///   IPv4: version 4, IHL >= 5 (options skipped), protocol UDP, not a fragment
///   IPv6: version 6, next header UDP (any extension header: pass)
///     UDP destination port in the set, frame no longer than MAX_REDIRECT_LEN
///       -> bpf_redirect_map(xskmap, rx_queue_index, no-socket action)
/// anything else, or a frame too short for the header read next -> XDP_PASS
/// ```
///
/// Frames longer than `max_frame` pass: no wire frame exceeds the MTU, so
/// they are GSO super-packets that generic XDP sees before segmentation (a
/// veth peer sending with UDP GSO). An AF_XDP socket would take one as a
/// single datagram; the kernel segments it for the companion socket.
///
/// Fragments pass so that the kernel reassembles them for STOQ's companion
/// UDP socket. Every read is preceded by a bounds check against `data_end`,
/// as the verifier demands.
pub fn stoq_filter(
    ports: &[u16],
    max_frame: u32,
    xskmap: BorrowedFd<'_>,
    no_socket: NoSocket,
) -> Result<Vec<Insn>, LoadError> {
    let max_frame = max_frame.min(MAX_REDIRECT_LEN) as i32;
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() || ports.len() > MAX_PORTS {
        return Err(LoadError::PortCount(ports.len()));
    }
    if ports.contains(&0) {
        return Err(LoadError::PortZero);
    }
    use Reg::*;
    let mut a = Asm::new();
    let [pass, vlan, l3, ipv4, ipv6, udp, redirect] = [(); 7].map(|()| a.label());

    // R2 = data, R3 = data_end, R7 = rx_queue_index (kept for the call).
    a.push([
        Insn::ldx(Size::W, R2, R1, MD_DATA),
        Insn::ldx(Size::W, R3, R1, MD_DATA_END),
        Insn::ldx(Size::W, R7, R1, MD_RX_QUEUE_INDEX),
    ]);
    // Ethernet: R4 = the layer-3 header, R5 = its EtherType.
    a.push([Insn::mov64_reg(R4, R2), Insn::alu64_imm(Alu::Add, R4, ETH_HLEN)]);
    a.jmp_reg(Cond::Gt, R4, R3, pass);
    a.push([Insn::ldx(Size::H, R5, R2, 12), Insn::be16(R5)]);
    a.jmp_imm(Cond::Eq, R5, ETH_P_8021Q, vlan);
    a.jmp_imm(Cond::Eq, R5, ETH_P_8021AD, vlan);
    a.ja(l3);
    // One VLAN tag: the EtherType follows it.
    a.bind(vlan);
    a.push([Insn::mov64_reg(R4, R2), Insn::alu64_imm(Alu::Add, R4, ETH_VLAN_HLEN)]);
    a.jmp_reg(Cond::Gt, R4, R3, pass);
    a.push([Insn::ldx(Size::H, R5, R2, 16), Insn::be16(R5)]);
    a.bind(l3);
    a.jmp_imm(Cond::Eq, R5, ETH_P_IP, ipv4);
    a.jmp_imm(Cond::Eq, R5, ETH_P_IPV6, ipv6);
    a.ja(pass);

    // IPv4 (RFC 791): R5 = IHL, then R4 += IHL * 4.
    a.bind(ipv4);
    a.push([Insn::mov64_reg(R0, R4), Insn::alu64_imm(Alu::Add, R0, 20)]);
    a.jmp_reg(Cond::Gt, R0, R3, pass);
    a.push([Insn::ldx(Size::B, R5, R4, 0), Insn::mov64_reg(R0, R5), Insn::alu64_imm(Alu::Rsh, R0, 4)]);
    a.jmp_imm(Cond::Ne, R0, 4, pass);
    a.push([Insn::alu64_imm(Alu::And, R5, 0x0f)]);
    a.jmp_imm(Cond::Lt, R5, 5, pass);
    a.push([Insn::ldx(Size::B, R0, R4, 9)]);
    a.jmp_imm(Cond::Ne, R0, IPPROTO_UDP, pass);
    a.push([Insn::ldx(Size::H, R0, R4, 6), Insn::be16(R0), Insn::alu64_imm(Alu::And, R0, IP_MF_OFFSET)]);
    a.jmp_imm(Cond::Ne, R0, 0, pass);
    // R5 is 5..=15 here, so the verifier knows R4 moves 20..=60 bytes.
    a.push([Insn::alu64_imm(Alu::Lsh, R5, 2), Insn::alu64_reg(Alu::Add, R4, R5)]);
    a.ja(udp);

    // IPv6 (RFC 8200): a fixed 40-byte header; extension headers pass.
    a.bind(ipv6);
    a.push([Insn::mov64_reg(R0, R4), Insn::alu64_imm(Alu::Add, R0, 40)]);
    a.jmp_reg(Cond::Gt, R0, R3, pass);
    a.push([Insn::ldx(Size::B, R0, R4, 0), Insn::alu64_imm(Alu::Rsh, R0, 4)]);
    a.jmp_imm(Cond::Ne, R0, 6, pass);
    a.push([Insn::ldx(Size::B, R0, R4, 6)]);
    a.jmp_imm(Cond::Ne, R0, IPPROTO_UDP, pass);
    a.push([Insn::alu64_imm(Alu::Add, R4, 40)]);

    // UDP (RFC 768): the destination port.
    a.bind(udp);
    a.push([Insn::mov64_reg(R0, R4), Insn::alu64_imm(Alu::Add, R0, 8)]);
    a.jmp_reg(Cond::Gt, R0, R3, pass);
    a.push([Insn::ldx(Size::H, R5, R4, 2), Insn::be16(R5)]);
    for &port in &ports {
        a.jmp_imm(Cond::Eq, R5, i32::from(port), redirect);
    }

    a.bind(pass);
    a.push([Insn::mov64_imm(R0, XdpAction::Pass as i32), Insn::exit()]);

    // bpf_redirect_map(map, key, flags): the flags' low bits are the
    // action when the map has no socket at `key`. A frame longer than
    // `max_frame` passes instead (R2 is still `data`).
    a.bind(redirect);
    a.push([Insn::mov64_reg(R0, R2), Insn::alu64_imm(Alu::Add, R0, max_frame)]);
    a.jmp_reg(Cond::Lt, R0, R3, pass);
    a.push(Insn::ld_map_fd(R1, xskmap.as_raw_fd()));
    a.push([
        Insn::mov64_reg(R2, R7),
        Insn::mov64_imm(R3, no_socket.action() as i32),
        Insn::call(BPF_FUNC_REDIRECT_MAP),
        Insn::exit(),
    ]);
    Ok(a.finish()?)
}

/// A loaded XDP program. The kernel keeps it while this descriptor, an
/// attachment's link, or an interface holds it.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
    id: u32,
    name: String,
}

impl Program {
    /// Loads `insns` as an XDP program named `name` (up to 15 of the
    /// characters `[A-Za-z0-9_.]`; others are left out). A verifier
    /// rejection carries the end of its log.
    pub fn load(name: &str, insns: &[Insn]) -> Result<Self, LoadError> {
        let mut name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.').collect();
        name.truncate(15); // ASCII by now: bytes are chars.
        let spec = sys::ProgSpec {
            prog_type: BPF_PROG_TYPE_XDP,
            expected_attach_type: BPF_XDP,
            insns,
            license: LICENSE,
            name: &name,
        };
        let fd = match sys::prog_load(&spec, None) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => return Err(LoadError::Permission { source: e }),
            // Load again with the verifier's log; its end says why.
            Err(first) => {
                let mut log = vec![0u8; LOG_SIZE];
                match sys::prog_load(&spec, Some(&mut log)) {
                    Ok(fd) => fd, // Refused once, accepted now: keep it.
                    Err(source) => {
                        let log = log_tail(&log);
                        if log.is_empty() {
                            return Err(LoadError::Kernel { what: "BPF_PROG_LOAD", source: first });
                        }
                        return Err(LoadError::Rejected { name, source, log });
                    }
                }
            }
        };
        let id =
            sys::prog_id(fd.as_fd()).map_err(|source| LoadError::Kernel { what: "BPF_OBJ_GET_INFO_BY_FD", source })?;
        Ok(Program { fd, id, name })
    }

    /// Loads the STOQ filter ([`stoq_filter`]) redirecting into `map`
    /// frames of at most `max_frame` bytes.
    pub fn stoq(ports: &[u16], max_frame: u32, map: &XskMap, no_socket: NoSocket) -> Result<Self, LoadError> {
        Self::load("stoq_xdp", &stoq_filter(ports, max_frame, map.as_fd(), no_socket)?)
    }

    /// The kernel's id for it, as `ip link` and `bpftool prog` show it.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Its name (as the kernel has it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs it once on `frame` (`BPF_PROG_TEST_RUN`) as if received on
    /// queue 0 of no particular interface, and returns its verdict (an
    /// [`XdpAction`] as a number). Nothing is sent or received.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, TestRunError> {
        self.run(frame, None)
    }

    /// [`test_run`](Self::test_run) as if received on queue `rx_queue_index`
    /// of interface `ifindex` (in the calling thread's network namespace;
    /// the queue must exist). Kernels too old to take an XDP test context
    /// refuse it (`EINVAL`).
    pub fn test_run_on(&self, frame: &[u8], ifindex: u32, rx_queue_index: u32) -> Result<u32, TestRunError> {
        let ctx = sys::XdpMd {
            data_end: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            ingress_ifindex: ifindex,
            rx_queue_index,
            ..Default::default()
        };
        self.run(frame, Some(&ctx))
    }

    fn run(&self, frame: &[u8], ctx: Option<&sys::XdpMd>) -> Result<u32, TestRunError> {
        if frame.len() < ETH_HLEN as usize {
            return Err(TestRunError::TooShort(frame.len()));
        }
        sys::prog_test_run(self.fd.as_fd(), frame, ctx).map_err(|source| TestRunError::Kernel { source })
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The program's license. Ours calls no GPL-only helper.
const LICENSE: &CStr = c"Apache-2.0";

/// The last [`LOG_TAIL_LINES`] lines of a NUL-terminated verifier log.
fn log_tail(log: &[u8]) -> String {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
    let mut tail = lines[skip..].join("\n");
    if skip > 0 {
        tail.insert_str(0, &format!("[{skip} earlier lines left out]\n"));
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_end_and_stops_at_nul() {
        let mut log = (0..100).map(|i| format!("line {i}\n")).collect::<String>().into_bytes();
        log.extend([0, b'x', b'y']);
        let tail = log_tail(&log);
        assert!(tail.starts_with("[60 earlier lines left out]\nline 60\n"), "{tail}");
        assert!(tail.ends_with("line 99"), "{tail}");
        assert_eq!(log_tail(b"short\0garbage"), "short");
        assert_eq!(log_tail(b""), "");
    }
}
