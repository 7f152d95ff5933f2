//! Binding a tracker's sockets: one per socket worker on each address, all
//! on the same port with SO_REUSEPORT, after a probe bind without it so that
//! a port another process holds is an error rather than shared traffic.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use super::StartError;
use crate::config::Config;

fn new_socket(
    addr: SocketAddr,
    tcp: bool,
    reuse_port: bool,
    config: &Config,
) -> io::Result<Socket> {
    let socket = if tcp {
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?
    } else {
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?
    };
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    if tcp {
        // Restarting must not wait for old connections in TIME_WAIT.
        socket.set_reuse_address(true)?;
        return Ok(socket);
    }
    // The kernel may cap these at net.core.{r,w}mem_max; that's not fatal.
    if let Err(e) = socket.set_recv_buffer_size(config.udp.recv_buffer_size) {
        log::warn!("{addr}: cannot set SO_RCVBUF: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(config.udp.send_buffer_size) {
        log::warn!("{addr}: cannot set SO_SNDBUF: {e}");
    }
    Ok(socket)
}

/// Binds one socket per socket worker on `addr`, all on the same port.
pub(super) fn bind_all(
    addr: SocketAddr,
    tcp: bool,
    workers: usize,
    config: &Config,
) -> Result<Vec<Socket>, StartError> {
    let proto = if tcp { "HTTP (TCP)" } else { "UDP" };
    let fail = |error| StartError::Bind { proto, addr, error };
    // SO_REUSEPORT lets a second process of the same user bind a port this
    // one holds, silently splitting the traffic. Binding once without it
    // first makes a taken port an error, as it should be.
    if addr.port() != 0 {
        let probe = new_socket(addr, tcp, false, config).map_err(fail)?;
        probe.bind(&addr.into()).map_err(fail)?;
    }
    let mut sockets = Vec::with_capacity(workers);
    let mut bound = addr;
    for _ in 0..workers {
        let s = new_socket(addr, tcp, true, config).map_err(fail)?;
        s.bind(&bound.into()).map_err(fail)?;
        if tcp {
            s.listen(1024).map_err(fail)?;
        }
        // With port 0 the first bind picks the port; the others share it.
        bound = s
            .local_addr()
            .map_err(fail)?
            .as_socket()
            .ok_or_else(|| fail(io::Error::other("not an IP socket")))?;
        sockets.push(s);
    }
    Ok(sockets)
}
