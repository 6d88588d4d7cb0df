//! Command-line interface: argument definitions (shared with stoq-node where
//! the options are the same) and the two commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use stoq_core::io::BackendKind;
use stoq_core::{ClientTls, Endpoint, ServerConfig};
use stoq_xdp::XdpOpener;

use crate::client::{Amount, ClientOptions, Mode, Output, bind_for, resolve, run_client};
use crate::probe::{ProbeArgs, run_probe};
use crate::profile::{ProfileArgs, XdpArgs};
use crate::server::{CertSource, PerfService, announce_ca, run_server_with};
use crate::udp_flood::{FloodOptions, receive, send};

/// Exit code for unusable arguments (as clap uses).
pub const EXIT_USAGE: u8 = 2;

/// stoq-perf: iperf-like throughput tests over STOQ, every byte verified.
#[derive(Debug, Parser)]
#[command(name = "stoq-perf", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// stoq-perf's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve perf tests.
    Server(ServerArgs),
    /// Run a test against a server.
    Client(ClientArgs),
    /// Same-run baseline: raw UDP over loopback, no QUIC, every byte
    /// verified; plain sockets (one system call per datagram) or a stoq-core
    /// packet backend (`--backend linux-batch`: GSO/GRO). With `--receive`
    /// or `--send`: one end of a two-process run (a verifying receiver on
    /// any backend, AF_XDP included, and a sender that floods it).
    BaselineUdp(BaselineArgs),
    /// Probe the host and its network interfaces, and show the tier and
    /// profile `--tier auto` would run with, with every step-down reason.
    Probe(ProbeArgs),
}

/// `stoq-perf baseline-udp` options.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Bytes to send (suffixes K, M, G are powers of 1024).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub bytes: u64,
    /// UDP payload per datagram (two-process runs: the same on both ends).
    #[arg(long, visible_alias = "payload", default_value_t = 1452)]
    pub max_payload: usize,
    /// How datagrams move: `std` (plain sockets, one system call per
    /// datagram) or a stoq-core backend name (portable, linux-batch,
    /// io_uring; af_xdp with --receive or --send).
    #[arg(long, default_value = "std")]
    pub backend: String,
    /// Receiving end of a two-process run: bind ADDR, receive through
    /// --backend until the sender's end marker, verify every datagram and
    /// report verified datagrams per second and CPU per datagram.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["send", "bytes"])]
    pub receive: Option<SocketAddr>,
    /// Sending end of a two-process run: send datagrams of --max-payload
    /// bytes to ADDR (no GSO, batched sends) for --seconds, then end
    /// markers that carry the count.
    #[arg(long, value_name = "ADDR", conflicts_with = "bytes")]
    pub send: Option<SocketAddr>,
    /// With --send: seconds to send [default: 5]. With --receive: the
    /// longest to run, as it normally stops at the end marker [default: 60].
    #[arg(long, value_name = "SECS")]
    pub seconds: Option<f64>,
    /// With --backend af_xdp: the interface to attach to.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// With --backend af_xdp: where the XDP program runs, ring sizes.
    #[command(flatten)]
    pub xdp: XdpArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where a server's certificate comes from.
#[derive(Debug, Clone, Args)]
pub struct CertArgs {
    /// Certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with = "dev_pki")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Generate a development CA and certificate into DIR (clients use --ca DIR/ca.pem).
    #[arg(long, value_name = "DIR")]
    pub dev_pki: Option<PathBuf>,
}

impl CertArgs {
    /// The certificate source these arguments select (a temporary dev PKI
    /// when none is given).
    pub fn source(&self) -> CertSource {
        match (&self.cert, &self.key, &self.dev_pki) {
            (Some(cert), Some(key), _) => CertSource::Files { cert: cert.clone(), key: key.clone() },
            (_, _, Some(dir)) => CertSource::DevPkiIn(dir.clone()),
            _ => CertSource::DevPkiTemp,
        }
    }
}

/// `stoq-perf server` options.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "[::]:4433")]
    pub listen: SocketAddr,
    /// Certificate options.
    #[command(flatten)]
    pub cert: CertArgs,
    /// Tier, backend and interface.
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Largest UDP payload in bytes [default: the profile's, else 1452].
    #[arg(long)]
    pub max_payload: Option<usize>,
    /// Congestion control for the server's sending side [default: the
    /// profile's, else cubic].
    #[arg(long, value_enum)]
    pub cc: Option<Cc>,
    /// Send as fast as the congestion window allows, without pacing.
    #[arg(long)]
    pub no_pacing: bool,
    /// Print one JSON line per finished stream on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Congestion controllers, as quiche implements them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cc {
    /// CUBIC (quiche 0.30 does not pace it: every packet is due at once).
    Cubic,
    /// NewReno (not paced either).
    Reno,
    /// BBRv2 (paced: packets carry departure times the shard honours).
    Bbr2,
}

impl From<Cc> for stoq_core::CongestionControl {
    fn from(c: Cc) -> Self {
        match c {
            Cc::Cubic => Self::Cubic,
            Cc::Reno => Self::Reno,
            Cc::Bbr2 => Self::Bbr2,
        }
    }
}

/// `stoq-perf client` options.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server address: `host:port` or `[v6]:port`.
    pub addr: String,
    /// Name to check the server's certificate against.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// CA certificate (PEM) to verify the server with.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify the server's certificate (development only).
    #[arg(long)]
    pub insecure: bool,
    /// Direction of the payload.
    #[arg(long, value_enum, default_value_t = Mode::Download)]
    pub mode: Mode,
    /// Payload bytes per direction (suffixes K, M, G, T = powers of 1024) [default: 1G].
    #[arg(long, value_parser = parse_size, conflicts_with = "time")]
    pub bytes: Option<u64>,
    /// Run for this many seconds instead of a fixed size.
    #[arg(long, value_name = "SECS")]
    pub time: Option<f64>,
    /// Streams per connection (per direction).
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// QUIC connections.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Tier, backend and interface.
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Seconds between report lines.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Largest UDP payload in bytes [default: the profile's, else 1452].
    #[arg(long)]
    pub max_payload: Option<usize>,
    /// Print the report as JSON on stdout (interval lines go to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Parses a byte count with an optional binary suffix: `1500`, `64K`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix {c:?} in {s:?}: use K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 =
        digits.parse().map_err(|_| format!("{s:?} is not a size: give a whole number like 1500, 64K or 1G"))?;
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a positive number of seconds.
pub fn parse_secs(what: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{what} must be a positive number of seconds, not {v}"))
}

/// Parses a backend name; the error lists the available ones.
pub fn parse_backend(name: &str) -> Result<BackendKind, String> {
    BackendKind::from_name(name).map_err(|e| e.to_string())
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("stoq-perf: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Server(a) => server(&a),
        Command::Client(a) => client(&a),
        Command::BaselineUdp(a) => baseline_udp(&a),
        Command::Probe(a) => run_probe(&a),
    }
}

/// The backend a `baseline-udp` run uses: `None` for plain std sockets.
pub fn baseline_backend(name: &str) -> Result<Option<BackendKind>, String> {
    if name == "std" {
        return Ok(None);
    }
    parse_backend(name).map(Some).map_err(|e| format!("{e}, or std for plain sockets"))
}

/// The options of a two-process run (`--send` or `--receive`), or a usage
/// error message.
pub fn flood_options(a: &BaselineArgs) -> Result<FloodOptions, String> {
    let (addr, default_secs) = match (a.send, a.receive) {
        (Some(to), _) => (to, 5.0),
        (None, Some(at)) => (at, 60.0),
        (None, None) => return Err("a two-process run needs --send ADDR or --receive ADDR".into()),
    };
    let Some(backend) = baseline_backend(&a.backend)? else {
        return Err("--send and --receive run through a stoq-core backend: pass --backend linux-batch \
                    (or af_xdp with --interface)"
            .into());
    };
    let opener = match (backend, &a.interface) {
        (BackendKind::AfXdp, Some(name)) => Some(XdpOpener::shared(a.xdp.config(name))),
        (BackendKind::AfXdp, None) => {
            return Err("--backend af_xdp needs --interface NAME (the interface to attach to)".into());
        }
        (_, Some(_)) => return Err("--interface goes with --backend af_xdp".into()),
        (_, None) => None,
    };
    let duration = parse_secs("--seconds", a.seconds.unwrap_or(default_secs))?;
    Ok(FloodOptions { backend, opener, addr, payload: a.max_payload, duration })
}

/// `baseline-udp --send` or `--receive`.
fn flood(a: &BaselineArgs) -> ExitCode {
    let o = match flood_options(a) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    let tunables = std::env::var("GLIBC_TUNABLES").ok();
    let setting = tunables.as_deref().unwrap_or("(not set)");
    let mut v = if a.receive.is_some() {
        let listening = |at| eprintln!("stoq-perf baseline-udp listening on {at} ({} backend)", o.backend);
        let r = match receive(&o, listening) {
            Ok(r) => r,
            Err(e) => return fail(&e),
        };
        if !a.json {
            let sent = r.datagrams_sent.map_or("? (no end marker arrived)".into(), |n| n.to_string());
            let lost = r.datagrams_lost.map_or("?".into(), |n| n.to_string());
            println!(
                "raw UDP receive ({}), {} B payload: {:.3} M datagrams/s verified ({:.3} Gbit/s); received {} of {sent} \
                 sent (lost {lost}); {:.3} CPU-s per million datagrams ({:.2} s user + {:.2} s sys); {:.1} datagrams \
                 per receive call, {} GRO buffers; GLIBC_TUNABLES={setting}",
                r.backend,
                r.payload,
                r.datagrams_per_s / 1e6,
                r.goodput_gbps,
                r.datagrams_received,
                r.cpu_s_per_million,
                r.cpu_user_s,
                r.cpu_sys_s,
                r.datagrams_per_rx_call,
                r.gro_buffers,
            );
        }
        serde_json::to_value(&r)
    } else {
        let s = match send(&o) {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        if !a.json {
            println!(
                "raw UDP send ({}), {} B payload: {} datagrams in {:.2} s = {:.3} M/s; {:.1} datagrams per send call; \
                 cpu {:.2} s user + {:.2} s sys; GLIBC_TUNABLES={setting}",
                s.backend,
                s.payload,
                s.datagrams_sent,
                s.seconds,
                s.datagrams_per_s / 1e6,
                s.datagrams_per_tx_syscall,
                s.cpu_user_s,
                s.cpu_sys_s,
            );
        }
        serde_json::to_value(&s)
    }
    .expect("plain data serialises");
    if a.json {
        v["glibc_tunables"] = serde_json::json!(tunables);
        println!("{v}");
    }
    ExitCode::SUCCESS
}

fn baseline_udp(a: &BaselineArgs) -> ExitCode {
    if a.send.is_some() || a.receive.is_some() {
        return flood(a);
    }
    if a.seconds.is_some() || a.interface.is_some() {
        return usage("--seconds and --interface go with --send or --receive (the loopback baseline moves --bytes)");
    }
    let result = match baseline_backend(&a.backend) {
        Ok(Some(BackendKind::AfXdp)) => {
            return usage(
                "the loopback baseline cannot run af_xdp (it needs an Ethernet interface): run a receiver \
                 with --receive ADDR --backend af_xdp --interface NAME and a sender with --send ADDR",
            );
        }
        Ok(None) => crate::baseline::udp_loopback(a.bytes, a.max_payload),
        Ok(Some(kind)) => crate::baseline::udp_loopback_backend(kind, a.bytes, a.max_payload),
        Err(e) => return usage(&e),
    };
    let r = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let tunables = std::env::var("GLIBC_TUNABLES").ok();
    if a.json {
        let mut v = serde_json::to_value(&r).expect("plain data serialises");
        v["glibc_tunables"] = serde_json::json!(tunables);
        println!("{v}");
    } else {
        println!(
            "raw UDP loopback ({}), {} B payload: {:.3} Gbit/s verified; datagrams sent {} received {} (lost {}); \
             datagrams/syscall tx {:.1} rx {:.1}; cpu {:.2} s user + {:.2} s sys = {:.2} GB/cpu-s \
             (sender {:.2} s, receiver {:.2} s); GLIBC_TUNABLES={}",
            r.backend,
            r.payload,
            r.goodput_gbps,
            r.datagrams_sent,
            r.datagrams_received,
            r.datagrams_lost(),
            r.datagrams_per_tx_syscall,
            r.datagrams_per_rx_syscall,
            r.cpu_user_s,
            r.cpu_sys_s,
            r.bytes_per_cpu_s / 1e9,
            r.cpu_sender_s,
            r.cpu_receiver_s,
            tunables.as_deref().unwrap_or("(not set)")
        );
    }
    ExitCode::SUCCESS
}

fn server(a: &ServerArgs) -> ExitCode {
    let chosen = match a.profile.resolve(false, a.listen.ip(), None) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let (tls, ca) = match a.cert.source().load() {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let mut cfg = ServerConfig::new(tls);
    chosen.apply(&mut cfg.endpoint);
    let t = &mut cfg.endpoint.transport;
    if let Some(p) = a.max_payload {
        t.max_udp_payload = p;
    }
    if let Some(cc) = a.cc {
        t.congestion_control = cc.into();
    }
    t.pacing &= !a.no_pacing;
    let payload = t.max_udp_payload;
    eprintln!("{}", chosen.describe());
    let endpoint = match Endpoint::server(a.listen, cfg) {
        Ok(e) => e,
        Err(e) => return fail(&e),
    };
    let zero_copy = if endpoint.capabilities().zero_copy { ", zero-copy" } else { "" };
    eprintln!(
        "stoq-perf server listening on {} ({} backend{zero_copy}, max payload {payload})",
        endpoint.local_addr(),
        chosen.backend,
    );
    if let Some(ca) = ca {
        announce_ca(&ca);
    }
    let stop = AtomicBool::new(false);
    run_server_with(&endpoint, &stop, Arc::new(PerfService { json: a.json }));
    ExitCode::SUCCESS
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("stoq-perf: {e}");
    ExitCode::FAILURE
}

/// Turns client arguments into options, or a usage error message.
pub fn client_options(a: &ClientArgs) -> Result<ClientOptions, String> {
    let peer = resolve(&a.addr).ok();
    let bind = peer.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |p| bind_for(p).ip());
    let chosen = a.profile.resolve(false, bind, peer.map(|p| p.ip()))?;
    let tls = match (&a.ca, a.insecure) {
        (Some(ca), _) => ClientTls::CaFile(ca.clone()),
        (None, true) => ClientTls::InsecureSkipVerify,
        (None, false) => {
            return Err("give --ca FILE (the server prints its CA path) or --insecure to skip verification".into());
        }
    };
    let amount = match (a.bytes, a.time) {
        (_, Some(t)) => Amount::Time(parse_secs("--time", t)?),
        (Some(n), None) => Amount::Bytes(n),
        (None, None) => Amount::Bytes(1 << 30),
    };
    let mut o = ClientOptions::new(a.addr.clone(), tls);
    o.server_name = a.server_name.clone();
    o.mode = a.mode;
    o.amount = amount;
    o.streams = a.streams;
    o.connections = a.connections;
    o.backend = chosen.backend;
    o.opener = chosen.opener();
    o.interval = parse_secs("--interval", a.interval)?;
    let profile = chosen.selection.as_ref().map(|s| &s.profile);
    o.max_payload = a.max_payload.or(profile.map(|p| p.max_udp_payload)).unwrap_or(o.max_payload);
    eprintln!("{}", chosen.describe());
    o.profile = profile.cloned();
    o.output = if a.json { Output::Stderr } else { Output::Stdout };
    Ok(o)
}

fn client(a: &ClientArgs) -> ExitCode {
    let opts = match client_options(a) {
        Ok(o) => o,
        Err(e) => return usage(&e),
    };
    match run_client(&opts) {
        Ok(report) => {
            if a.json {
                println!("{}", report.to_json());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1X").unwrap_err().contains("suffix"));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
    }

    #[test]
    fn seconds_must_be_positive() {
        assert!(parse_secs("--time", 0.0).is_err());
        assert!(parse_secs("--time", -1.0).is_err());
        assert!(parse_secs("--time", f64::NAN).is_err());
        assert_eq!(parse_secs("--time", 1.5), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn unknown_backend_lists_the_known_ones() {
        let e = parse_backend("warp-drive").unwrap_err();
        assert!(e.contains("warp-drive") && e.contains("portable"), "{e}");
    }

    #[test]
    fn baseline_backend_is_std_or_a_stoq_backend() {
        let cli = Cli::try_parse_from(["stoq-perf", "baseline-udp"]).unwrap();
        let Command::BaselineUdp(a) = cli.command else { panic!("not a baseline command") };
        assert_eq!(baseline_backend(&a.backend), Ok(None));
        assert_eq!(baseline_backend("linux-batch"), Ok(Some(BackendKind::LinuxBatch)));
        let e = baseline_backend("nope").unwrap_err();
        assert!(e.contains("std") && e.contains("portable"), "{e}");
    }

    fn baseline_args(args: &[&str]) -> Result<BaselineArgs, clap::Error> {
        let cli = Cli::try_parse_from([&["stoq-perf", "baseline-udp"], args].concat())?;
        let Command::BaselineUdp(a) = cli.command else { panic!("not a baseline command") };
        Ok(a)
    }

    #[test]
    fn two_process_runs_need_a_backend_and_af_xdp_an_interface() {
        let a = baseline_args(&["--receive", "10.0.0.1:4500", "--backend", "linux-batch", "--payload", "64"]).unwrap();
        let o = flood_options(&a).unwrap();
        assert_eq!((o.backend, o.payload, o.duration), (BackendKind::LinuxBatch, 64, Duration::from_secs(60)));
        assert!(o.opener.is_none());
        let a = baseline_args(&["--send", "10.0.0.1:4500", "--backend", "linux-batch", "--seconds", "2"]).unwrap();
        assert_eq!(flood_options(&a).unwrap().duration, Duration::from_secs(2));
        let a = baseline_args(&["--receive", "10.0.0.1:4500", "--backend", "af_xdp", "--interface", "veth1"]).unwrap();
        assert_eq!(flood_options(&a).unwrap().opener.map(|o| o.kind()), Some(BackendKind::AfXdp));
        for (args, says) in [
            (&["--receive", "10.0.0.1:4500"][..], "--backend linux-batch"),
            (&["--receive", "10.0.0.1:4500", "--backend", "af_xdp"], "needs --interface"),
            (
                &["--send", "10.0.0.1:4500", "--backend", "io_uring", "--interface", "veth1"],
                "goes with --backend af_xdp",
            ),
        ] {
            let e = flood_options(&baseline_args(args).unwrap()).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
        assert!(baseline_args(&["--receive", "10.0.0.1:4500", "--bytes", "1M"]).is_err());
        let a = baseline_args(&["--backend", "af_xdp"]).unwrap();
        assert_eq!(baseline_udp(&a), ExitCode::from(EXIT_USAGE), "no AF_XDP on loopback");
        assert!(baseline_args(&["--receive", "10.0.0.1:4500", "--send", "10.0.0.1:4500"]).is_err());
    }

    #[test]
    fn client_needs_a_trust_choice() {
        let cli = Cli::try_parse_from(["stoq-perf", "client", "127.0.0.1:4433"]).unwrap();
        let Command::Client(a) = cli.command else { panic!("not a client command") };
        assert!(client_options(&a).unwrap_err().contains("--ca"));
    }

    #[test]
    fn bytes_and_time_are_exclusive() {
        let r = Cli::try_parse_from(["stoq-perf", "client", "x:1", "--insecure", "--bytes", "1M", "--time", "2"]);
        assert!(r.is_err());
    }
}
