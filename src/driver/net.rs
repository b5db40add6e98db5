//! The switch's sockets: the SIP UDP socket and how a datagram is read with the time it
//! waited in the kernel's queue (overload control sheds by it), TCP and TLS connections
//! (admitted under the caps, framing incoming bytes into messages, writing outgoing
//! ones; opened by the switch to a caller's Contact or a trunk), and `flush`: what the
//! call manager sends, each on its way.

use super::*;

/// What the TCP connection tasks tell the signalling task.
pub(super) enum NetInput {
    Frame {
        peer: SocketAddr,
        transport: Transport,
        bytes: Vec<u8>,
    },
    Malformed {
        peer: SocketAddr,
        transport: Transport,
        bytes: Vec<u8>,
        why: String,
    },
    Connected {
        peer: SocketAddr,
        writer: mpsc::UnboundedSender<Vec<u8>>,
    },
    Closed {
        peer: SocketAddr,
    },
    /// A connection the switch opened could not be (refused, timed out, or the far end's
    /// certificate was not trusted).
    Failed {
        peer: SocketAddr,
        transport: Transport,
    },
}

/// The SIP UDP socket, with buffers large enough that a burst of requests (a thousand
/// calls a second arrive in clumps) waits in the kernel instead of being dropped while
/// the signalling task is busy. The kernel caps them at net.core.rmem_max/wmem_max.
pub(super) fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    // The kernel stamps each datagram as it arrives: how long one waited in the queue is
    // what overload control sheds new work by. Without stamps every wait reads as none.
    if let Err(e) =
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
    {
        warn!(error = %e, "no receive timestamps on the SIP socket: overload control sees no queue");
    }
    UdpSocket::from_std(s.into())
}

/// One datagram from `udp`: its length, its source, and how far behind the signalling
/// loop is: how long the datagram waited in the socket's queue since the kernel received
/// it — or, while the queue holds more than half of what the socket's buffer takes,
/// [`QUEUE_FILLING`], past any overload threshold: a burst can fill the buffer before
/// any datagram has waited long, and the kernel then drops what a call in progress sends
/// as readily as new calls.
/// `stamps`: room for the stamp and the queue's last reading, made once and used for
/// every datagram.
pub(super) async fn recv_aged(
    udp: &UdpSocket,
    buf: &mut [u8],
    stamps: &mut Stamps,
) -> std::io::Result<(usize, SocketAddr, Duration)> {
    loop {
        udp.readable().await?;
        match udp.try_io(tokio::io::Interest::READABLE, || {
            recv_stamped(udp, buf, stamps)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// How far behind the loop reads as while the socket's queue is more than half full.
pub(super) const QUEUE_FILLING: Duration = Duration::from_secs(60);

/// How full the socket's receive queue is, 0.0–1.0: the memory its waiting datagrams
/// take against the buffer's size (SO_MEMINFO); 0 when the kernel does not tell.
fn queue_fill(fd: std::os::fd::RawFd) -> f32 {
    // Linux's SO_MEMINFO (55 on every architecture the switch is built for) fills
    // SK_MEMINFO_VARS (9) u32s: [0] the receive queue's memory, [1] the receive buffer.
    const SO_MEMINFO: libc::c_int = 55;
    let mut info = [0u32; 9];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a writable buffer of `len` bytes that outlives the call, and
    // getsockopt writes at most `len` bytes to it.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || info[1] == 0 {
        return 0.0;
    }
    info[0] as f32 / info[1] as f32
}

/// The queue is measured every this many datagrams: it holds thousands, so its fill
/// moves little between readings, and each reading is a system call.
pub(super) const QUEUE_SAMPLE: u32 = 8;

/// What reading datagrams keeps between them: room for one receive timestamp's control
/// message, and whether the queue was more than half full when last measured.
pub(super) struct Stamps {
    control: Vec<u8>,
    reads: u32,
    filling: bool,
}

impl Stamps {
    pub(super) fn new() -> Stamps {
        Stamps {
            control: nix::cmsg_space!(nix::sys::time::TimeSpec),
            reads: 0,
            filling: false,
        }
    }
}

fn recv_stamped(
    udp: &UdpSocket,
    buf: &mut [u8],
    stamps: &mut Stamps,
) -> std::io::Result<(usize, SocketAddr, Duration)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        udp.as_raw_fd(),
        &mut iov,
        Some(&mut stamps.control),
        MsgFlags::empty(),
    )
    .map_err(std::io::Error::from)?;
    if stamps.reads.is_multiple_of(QUEUE_SAMPLE) {
        stamps.filling = queue_fill(udp.as_raw_fd()) > 0.5;
    }
    stamps.reads = stamps.reads.wrapping_add(1);
    let waited = if stamps.filling {
        QUEUE_FILLING
    } else {
        Duration::ZERO
    };
    // The datagram is ours now: control data that cannot be read (truncated) only
    // costs the stamp, read as no wait.
    let waited = msg
        .cmsgs()
        .ok()
        .and_then(|mut cmsgs| {
            cmsgs.find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    Some(crate::clock::since_kernel_stamp(ts.tv_sec(), ts.tv_nsec()))
                }
                _ => None,
            })
        })
        .unwrap_or_default()
        .max(waited);
    let from = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
                })
        })
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "a datagram from an address of family {:?}",
                msg.address.and_then(|a| a.family())
            ))
        })?;
    Ok((msg.bytes, from, waited))
}

/// A connection the switch opens to `peer` (`trunk`, when it is one's): TCP, or TLS to a
/// trunk (`tls`: the name its certificate must carry and the authorities it trusts). A
/// failure is told as `Failed`, logged and counted.
pub(super) async fn connect(
    peer: SocketAddr,
    trunk: Option<String>,
    tls: Option<super::tls::TrunkConnector>,
    net_tx: mpsc::UnboundedSender<NetInput>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let failed = |kind: &'static str, why: String| {
        match &trunk {
            Some(name) => {
                warn!(trunk = %name, %peer, transport = transport.as_str(), "cannot connect: {why}");
                crate::telemetry::trunk_connect_failed(name, kind);
            }
            None => warn!(%peer, transport = transport.as_str(), "cannot connect: {why}"),
        }
        let _ = net_tx.send(NetInput::Failed { peer, transport });
    };
    let tcp = match tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(peer)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return failed("refused", e.to_string()),
        Err(_) => return failed("timeout", format!("no answer in {CONNECT_WITHIN:?}")),
    };
    let (writer, rx) = mpsc::unbounded_channel();
    match tls {
        None => {
            let _ = net_tx.send(NetInput::Connected { peer, writer });
            connection(tcp, peer, transport, rx, net_tx, None).await;
        }
        Some(t) => {
            let handshake = t.connector.connect(t.server_name.clone(), tcp);
            match tokio::time::timeout(CONNECT_WITHIN, handshake).await {
                Ok(Ok(stream)) => {
                    let _ = net_tx.send(NetInput::Connected { peer, writer });
                    connection(stream, peer, transport, rx, net_tx, None).await;
                }
                Ok(Err(e)) => failed(
                    "tls_handshake",
                    format!("TLS handshake for '{}' failed: {e}", t.server_name.to_str()),
                ),
                Err(_) => failed(
                    "timeout",
                    format!("TLS handshake not done in {CONNECT_WITHIN:?}"),
                ),
            }
        }
    }
}

/// How long opening a connection (and its TLS handshake) may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);

/// One TCP or TLS connection: frames incoming bytes into messages, writes outgoing ones.
pub(super) async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    net_tx: mpsc::UnboundedSender<NetInput>,
    first_message: Option<tokio::time::Instant>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    // A connection someone opened to us must bring a whole SIP message within
    // `limits.tcp_first_message_secs`: silent ones would hold the connection caps.
    let mut framed_one = first_message.is_none();
    let deadline = first_message;
    'read: loop {
        let read = rd.read(&mut chunk);
        let n = match deadline.filter(|_| !framed_one) {
            Some(at) => match tokio::time::timeout_at(at, read).await {
                Ok(r) => r,
                Err(_) => {
                    debug!(%peer, "TCP connection sent no SIP message in time: closed");
                    crate::telemetry::limit_refused("tcp_first_message");
                    break;
                }
            },
            None => read.await,
        };
        let n = match n {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            match sip::frame_stream(&buf) {
                Ok(None) => break,
                Ok(Some((skip, len))) => {
                    let frame = buf[skip..skip + len].to_vec();
                    buf.drain(..skip + len);
                    if len > 0 {
                        framed_one = true;
                        let _ = net_tx.send(NetInput::Frame {
                            peer,
                            transport,
                            bytes: frame,
                        });
                    }
                }
                Err(e) => {
                    // A stream we cannot frame cannot be resynchronised: answer and close.
                    let _ = net_tx.send(NetInput::Malformed {
                        peer,
                        transport,
                        bytes: buf.clone(),
                        why: e.to_string(),
                    });
                    break 'read;
                }
            }
        }
    }
    let _ = net_tx.send(NetInput::Closed { peer });
    // Give the writer a moment to send a pending 400, then stop it.
    let _ = tokio::time::timeout(Duration::from_millis(200), writer).await;
}

/// A connection from `peer` (TCP or TLS) within `[limits]`: its writer is kept in
/// `conns`; the channel its task writes from and the time by which it must bring a whole
/// message. None when over the caps (it is dropped, counted).
pub(super) fn admit_connection(
    manager: &Manager,
    clock: &Clock,
    conns: &mut HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    peer: SocketAddr,
) -> Option<(mpsc::UnboundedReceiver<Vec<u8>>, tokio::time::Instant)> {
    let limits = manager.limits();
    let from_there = conns.keys().filter(|a| a.ip() == peer.ip()).count();
    if conns.len() >= limits.max_tcp_connections || from_there >= limits.max_tcp_per_address {
        debug!(from = %peer, open = conns.len(), from_there, "TCP connection over limits: closed");
        crate::telemetry::limit_refused(if from_there >= limits.max_tcp_per_address {
            "tcp_per_address"
        } else {
            "tcp_connections"
        });
        return None;
    }
    let (writer, rx) = mpsc::unbounded_channel();
    conns.insert(peer, writer);
    let first = clock.timer_at(clock.now() + Duration::from_secs(limits.tcp_first_message_secs));
    Some((rx, first))
}

/// The next connection on the TLS listener, or never when there is none.
pub(super) async fn accept_tls(
    tls: &Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    match tls {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Where the switch's messages go out: the SIP UDP socket, the TCP and TLS connections
/// by address (their writers), what waits for a connection being opened, and how a trunk
/// on TLS is reached.
pub(super) struct Wire {
    pub(super) udp: UdpSocket,
    pub(super) conns: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
    pub(super) pending: HashMap<SocketAddr, Vec<Vec<u8>>>,
    pub(super) net_tx: mpsc::UnboundedSender<NetInput>,
    pub(super) trunk_tls: tls::TrunkTls,
}

/// Everything the manager has to send, each on its way (a connection opened where none
/// is yet).
pub(super) async fn flush(manager: &mut Manager, wire: &mut Wire) {
    let Wire {
        udp,
        conns,
        pending: pending_tcp,
        net_tx,
        trunk_tls,
    } = wire;
    while let Some(Transmit {
        transport,
        dest,
        bytes,
    }) = manager.poll_transmit()
    {
        match transport {
            Transport::Udp => {
                if let Err(e) = udp.send_to(&bytes, dest).await {
                    debug!(%dest, error = %e, "UDP send failed");
                }
            }
            Transport::Tcp => match conns.get(&dest) {
                Some(w) => {
                    let _ = w.send(bytes);
                }
                None => {
                    let first = !pending_tcp.contains_key(&dest);
                    pending_tcp.entry(dest).or_default().push(bytes);
                    if first {
                        let peer = Peer {
                            transport,
                            addr: dest,
                        };
                        let trunk = manager.trunk_name_at(peer).map(str::to_string);
                        tokio::spawn(connect(dest, trunk, None, net_tx.clone()));
                    }
                }
            },
            // A phone on TLS is reached on the connection it opened; the switch opens one
            // only to a trunk on TLS, whose certificate it can check.
            Transport::Tls => match conns.get(&dest) {
                Some(w) => {
                    let _ = w.send(bytes);
                }
                None => match manager
                    .trunk_name_at(Peer {
                        transport,
                        addr: dest,
                    })
                    .and_then(|name| Some((name, trunk_tls.get(name)?)))
                {
                    Some((name, tls)) => {
                        let first = !pending_tcp.contains_key(&dest);
                        pending_tcp.entry(dest).or_default().push(bytes);
                        if first {
                            let (name, tls) = (name.to_string(), tls.clone());
                            tokio::spawn(connect(dest, Some(name), Some(tls), net_tx.clone()));
                        }
                    }
                    None => {
                        debug!(%dest, "no TLS connection to send on: dropped");
                        let _ = net_tx.send(NetInput::Failed {
                            peer: dest,
                            transport,
                        });
                    }
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The switch's SIP socket as `bind_udp` makes it, its address, and a sender.
    fn socket_and_sender() -> (UdpSocket, SocketAddr, std::net::UdpSocket) {
        let udp = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = udp.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        (udp, to, sender)
    }

    /// The kernel's stamp tells how long a datagram sat in the queue before the switch
    /// read it (what overload control sheds by), and where it came from.
    #[tokio::test]
    async fn a_datagram_read_late_says_how_long_it_waited() {
        let (udp, to, sender) = socket_and_sender();
        let (mut buf, mut stamps) = (vec![0u8; 2048], Stamps::new());
        // The kernel turns receive stamps on for the whole machine a moment after the
        // first socket asks (until then a datagram is stamped as it is read): in the
        // switch that is its first moment; here, a datagram read first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        sender.send_to(b"warm-up", to).unwrap();
        recv_aged(&udp, &mut buf, &mut stamps).await.unwrap();
        sender.send_to(b"OPTIONS", to).unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let (n, from, waited) = recv_aged(&udp, &mut buf, &mut stamps).await.unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"OPTIONS"[..], sender.local_addr().unwrap())
        );
        assert!(waited >= Duration::from_millis(70), "{waited:?}");
    }

    /// A queue more than half full reads as far behind, however fresh its datagrams: a
    /// burst is shed before the kernel drops what calls in progress send.
    #[tokio::test]
    async fn a_queue_more_than_half_full_reads_as_far_behind() {
        use std::os::fd::AsRawFd;
        let (udp, to, sender) = socket_and_sender();
        let (mut buf, mut stamps) = (vec![0u8; 2048], Stamps::new());
        sender.send_to(b"OPTIONS", to).unwrap();
        let (_, _, waited) = recv_aged(&udp, &mut buf, &mut stamps).await.unwrap();
        assert!(waited < QUEUE_FILLING, "an empty queue: {waited:?}");
        assert_eq!(queue_fill(udp.as_raw_fd()), 0.0);
        // Fill it past half, bounded by what the buffer takes.
        let datagram = [b'x'; 1200];
        let mut sent = 0;
        while queue_fill(udp.as_raw_fd()) <= 0.6 && sent < 200_000 {
            sender.send_to(&datagram, to).unwrap();
            sent += 1;
        }
        assert!(queue_fill(udp.as_raw_fd()) > 0.5, "after {sent} datagrams");
        // Measured every QUEUE_SAMPLE datagrams: within that many reads, the loop reads
        // as behind past any threshold.
        let mut behind = false;
        for _ in 0..QUEUE_SAMPLE {
            let (_, _, waited) = recv_aged(&udp, &mut buf, &mut stamps).await.unwrap();
            behind = waited == QUEUE_FILLING;
            if behind {
                break;
            }
        }
        assert!(behind, "never read as behind in {QUEUE_SAMPLE} reads");
    }
}
