//! The send path: one linked `sendmsg` submission per message, planned
//! by the same [`SendPlan`](crate::io::linux::plan::SendPlan) as
//! `linux-batch`'s `sendmmsg`, submitted and reaped with one
//! `io_uring_enter`, and mapped back onto the batch as a completed prefix.

use std::io;

use io_uring::types::Fd;
use io_uring::{opcode, squeue};

use super::{SEND, UringIo};
use crate::io::linux::plan::Failure;
use crate::io::{IoCounters, TxBatch};

impl UringIo {
    /// Submits the `n` planned messages as one linked chain and waits for
    /// all their completions. Returns the `io_uring_enter` calls made.
    fn submit_sends(&mut self, n: usize) -> io::Result<u64> {
        self.reap(); // an empty completion queue makes `want` below exact
        self.sends_reaped = 0;
        for m in 0..n {
            let hdr = self.tx.hdr(m);
            let mut sqe = opcode::SendMsg::new(Fd(self.fd), hdr).flags(libc::MSG_DONTWAIT as u32).build();
            if m + 1 < n {
                sqe = sqe.flags(squeue::Flags::IO_LINK);
            }
            // SAFETY: the header, its iovec, address and control buffers live
            // in `self.tx` and the payload in the tx batch `send` holds
            // borrowed across `plan_send` and this call; none of it changes
            // or moves until the loop below has reaped all `n` completions.
            unsafe { self.push(&sqe.user_data(SEND | m as u64)) }?;
        }
        let mut calls = 0;
        while self.sends_reaped < n {
            calls += 1;
            self.enter(n - self.sends_reaped, None)?;
            self.reap();
        }
        Ok(calls)
    }

    /// [`PacketIo::send`](crate::io::PacketIo::send).
    pub(super) fn send_batch(&mut self, batch: &mut TxBatch) -> io::Result<bool> {
        self.check_usable()?;
        let mut calls = 0;
        let mut blocked = false;
        while !batch.is_empty() {
            let tx = &mut self.tx;
            let planned = self.plan.plan(batch, |m, msg| {
                let (name, control) = tx.buffers(m);
                let (name_len, control_len) = msg.encode(name, control);
                tx.set(m, msg.payload, name_len, control_len);
            });
            match self.submit_sends(planned) {
                Ok(n) => calls += n,
                Err(e) => {
                    IoCounters::add(&self.counters.tx_syscalls, calls + 1);
                    return Err(e);
                }
            }
            // The chain is linked: everything after the first failure was cancelled.
            let sent = self.results[..planned].iter().position(|&r| r < 0).unwrap_or(planned);
            self.plan.complete(batch, 0..sent, &self.counters);
            if sent < planned {
                let e = io::Error::from_raw_os_error(-self.results[sent]);
                if let Failure::Blocked = self.plan.failed(sent, &e, batch, &self.counters) {
                    blocked = true;
                    break;
                }
            }
        }
        IoCounters::add(&self.counters.tx_syscalls, calls);
        Ok(!blocked)
    }
}
