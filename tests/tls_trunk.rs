//! Trunks on SIP over TLS (rustls): the switch opens the connection itself, sends the
//! trunk's name as SNI and takes the carrier's certificate only when an authority the
//! trunk trusts (`tls_ca`) signed it for that name (`tls_server_name`). A call, its ACK
//! and the carrier's BYE travel on that one connection, and the switch names its own TLS
//! listener in Via and Contact. A carrier that presents a certificate for another name,
//! or one signed by an authority the trunk does not trust, is sent nothing: the call goes
//! on to the next trunk at once, without waiting for a timer (as it does from a trunk on
//! TCP that refuses the connection). The carriers are the test's own TLS servers; the
//! certificates are made by `openssl`.

mod common;

use common::tls::{Conn, authority, certificate, tls_lines};
use common::{WAIT, config_with, start, start_on};
use freecall::sip::Message;
use freecall_testkit::Phone;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// A carrier's TLS listener presenting one certificate.
struct Carrier {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    addr: SocketAddr,
}

impl Carrier {
    async fn bind(cert: &Path, key: &Path) -> Carrier {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Carrier {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            addr,
        }
    }

    /// The next connection, once its handshake is done: the name the switch asked for
    /// (SNI) and the stream. Err when the handshake failed (the switch refused the
    /// certificate).
    async fn accept(&self) -> std::io::Result<(Option<String>, Conn<TlsStream<TcpStream>>)> {
        let (tcp, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the switch connects in time")?;
        let stream = self.acceptor.accept(tcp).await?;
        let sni = stream.get_ref().1.server_name().map(str::to_string);
        Ok((sni, Conn::new(stream)))
    }
}

/// A response to `req` from the carrier at `me`, with `tag` and optional SDP.
fn respond(req: &Message, me: SocketAddr, code: u16, tag: &str, sdp: Option<&str>) -> String {
    let body = sdp.unwrap_or("");
    let content_type = if sdp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    let to = if req.to_tag.is_some() {
        req.to.clone()
    } else {
        format!("{};tag={tag}", req.to)
    };
    format!(
        "SIP/2.0 {code} OK\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n\
Contact: <sip:carrier@{me};transport=tls>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        req.header("Via").unwrap(),
        req.from,
        req.call_id,
        req.cseq,
        req.cseq_method.as_str(),
        body.len()
    )
}

/// The next request of `method` on `conn`; the switch's OPTIONS pings are answered.
async fn next_request(
    conn: &mut Conn<TlsStream<TcpStream>>,
    me: SocketAddr,
    method: &str,
) -> Message {
    loop {
        let m = conn.next().await;
        match m.method().map(|m| m.as_str()) {
            Some("OPTIONS") => conn.send(&respond(&m, me, 200, "ping", None)).await,
            Some(got) if got == method => return m,
            other => panic!("expected {method}, got {other:?}"),
        }
    }
}

const SDP: &str = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n";

/// `[[trunks]]` lines for a trunk on TLS at `addr`, trusting `ca` for `carrier.test`.
fn tls_trunk(name: &str, addr: SocketAddr, ca: &Path) -> String {
    format!(
        "[[trunks]]\nname = \"{name}\"\naddress = \"{addr}\"\ntransport = \"tls\"\n\
tls_server_name = \"carrier.test\"\ntls_ca = \"{}\"\n",
        ca.display()
    )
}

#[tokio::test]
async fn a_call_goes_to_a_carrier_on_tls_checked_by_name_and_its_bye_comes_back_on_the_connection()
{
    let dir = common::daemon::temp_dir("tls-trunk-call");
    let (switch_cert, switch_key, _) = certificate(&dir, "switch");
    let carriers = authority(&dir, "carriers");
    let (cert, key) = carriers.issue("carrier", "DNS:carrier.test");
    let carrier = Carrier::bind(&cert, &key).await;
    let trunks = format!(
        "{}[[routes]]\nprefix = \"\"\ntrunks = [\"carrier\"]\n",
        tls_trunk("carrier", carrier.addr, &carriers.certificate)
    );
    let cfg = config_with(
        &trunks,
        &tls_lines(&switch_cert, &switch_key),
        "",
        "127.0.0.1",
    );
    let switch = start(&cfg).await;
    let (sip, tls) = (switch.sip_addr, switch.tls_addr.expect("listening for TLS"));

    let caller = Phone::bind("caller").await;
    let (invite, mut leg) = caller.invite(sip, "0212345678", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;

    let (sni, mut conn) = carrier
        .accept()
        .await
        .expect("the switch takes the carrier's certificate");
    assert_eq!(
        sni.as_deref(),
        Some("carrier.test"),
        "the trunk's name as SNI"
    );
    let to_carrier = next_request(&mut conn, carrier.addr, "INVITE").await;
    let via = to_carrier.header("Via").unwrap();
    assert!(via.starts_with(&format!("SIP/2.0/TLS {tls};")), "{via}");
    assert_eq!(
        to_carrier.contact_uri.as_deref(),
        Some(format!("sip:freecall@{tls};transport=tls").as_str()),
        "the carrier reaches the switch's TLS listener"
    );
    conn.send(&respond(&to_carrier, carrier.addr, 200, "c1", Some(SDP)))
        .await;
    let ack = next_request(&mut conn, carrier.addr, "ACK").await;
    assert_eq!(ack.call_id, to_carrier.call_id);

    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;

    // The carrier hangs up on the same connection; the caller gets the BYE.
    conn.send(&format!(
        "BYE sip:freecall@{tls};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {};branch=z9hG4bKcbye1\r\n\
Max-Forwards: 70\r\nFrom: {};tag=c1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        carrier.addr, to_carrier.to, to_carrier.from, to_carrier.call_id
    ))
    .await;
    let (bye, from) = caller.expect_request("BYE", WAIT).await;
    caller
        .send(from, &caller.response(&bye, 200, "OK", "x", None))
        .await;
    let done = conn.final_response().await;
    assert_eq!(
        (done.status(), done.cseq_method.as_str()),
        (Some(200), "BYE")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(switch.active_calls().await, 0);
}

#[tokio::test]
async fn a_carrier_whose_certificate_is_for_another_name_or_from_an_unknown_authority_gets_nothing()
{
    let dir = common::daemon::temp_dir("tls-trunk-refused");
    let (switch_cert, switch_key, _) = certificate(&dir, "switch");
    let carriers = authority(&dir, "carriers");
    // Signed by the trusted authority, but for another name.
    let (cert, key) = carriers.issue("impostor", "DNS:other.test,IP:127.0.0.1");
    let wrong_name = Carrier::bind(&cert, &key).await;
    // For the right name, but signed by an authority the trunk does not trust.
    let (cert, key) = authority(&dir, "strangers").issue("stranger", "DNS:carrier.test");
    let unknown_ca = Carrier::bind(&cert, &key).await;
    let backup = Phone::bind("backup").await;
    let trunks = format!(
        "{}{}[[trunks]]\nname = \"backup\"\naddress = \"{}\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"wrong-name\", \"unknown-ca\", \"backup\"]\n",
        tls_trunk("wrong-name", wrong_name.addr, &carriers.certificate),
        tls_trunk("unknown-ca", unknown_ca.addr, &carriers.certificate),
        backup.addr
    );
    let cfg = config_with(
        &trunks,
        &tls_lines(&switch_cert, &switch_key),
        "",
        "127.0.0.1",
    );
    // The switch's clock never moves: no retransmission or transaction timer can fire,
    // so only the refused handshakes themselves can move the call on.
    let switch = start_on(&cfg, freecall::clock::Clock::adjustable()).await;
    let sip = switch.sip_addr;

    let refused = |carrier: Carrier| async move {
        match carrier.accept().await {
            Ok((_, mut conn)) => panic!(
                "the switch took a certificate it should not: {:?}",
                conn.next().await.start
            ),
            Err(e) => e.to_string(),
        }
    };
    let (a, b) = (
        tokio::spawn(refused(wrong_name)),
        tokio::spawn(refused(unknown_ca)),
    );
    let caller = Phone::bind("caller").await;
    let (invite, mut leg) = caller.invite(sip, "0212345678", &caller.sdp("sendrecv"));
    caller.send(sip, &invite).await;

    let (to_backup, from) = backup.expect_request("INVITE", WAIT).await;
    let why_a = a.await.unwrap();
    let why_b = b.await.unwrap();
    // What the switch told each carrier as it hung up the handshake.
    assert!(why_a.contains("BadCertificate"), "{why_a}");
    assert!(why_b.contains("UnknownCA"), "{why_b}");
    backup
        .send(
            from,
            &backup.response(&to_backup, 200, "OK", "b1", Some(&backup.sdp("sendrecv"))),
        )
        .await;
    let ok = caller.expect_status(&[200], WAIT).await;
    Phone::update_leg(&mut leg, &ok);
    caller.send(sip, &caller.ack(&leg, leg.cseq)).await;
    backup.expect_request("ACK", WAIT).await;
    assert_eq!(
        switch.active_calls().await,
        1,
        "the call is up on the backup"
    );
}

#[tokio::test]
async fn a_trunk_on_tcp_that_refuses_the_connection_passes_the_call_on_at_once() {
    // A port nothing listens on: the connection is refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let backup = Phone::bind("backup").await;
    let trunks = format!(
        "[[trunks]]\nname = \"down\"\naddress = \"{closed}\"\ntransport = \"tcp\"\n\
[[trunks]]\nname = \"backup\"\naddress = \"{}\"\n\
[[routes]]\nprefix = \"\"\ntrunks = [\"down\", \"backup\"]\n",
        backup.addr
    );
    let cfg = config_with(&trunks, "", "", "127.0.0.1");
    // No timer can fire on a clock that never moves: only the refusal moves the call on.
    let switch = start_on(&cfg, freecall::clock::Clock::adjustable()).await;
    let caller = Phone::bind("caller").await;
    let (invite, _) = caller.invite(switch.sip_addr, "0212345678", &caller.sdp("sendrecv"));
    caller.send(switch.sip_addr, &invite).await;
    let (to_backup, _) = backup.expect_request("INVITE", WAIT).await;
    assert!(
        to_backup
            .uri_user
            .as_deref()
            .is_some_and(|u| u.ends_with("212345678"))
    );
}
