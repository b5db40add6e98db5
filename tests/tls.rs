//! SIP over TLS for phones (rustls): a phone connects to `sip.tls_listen`, checks the
//! switch's certificate, and makes a call to a carrier on UDP — the answer, the ACK and the
//! carrier's BYE all travel on its TLS connection, and the switch's Contact names its TLS
//! port with `transport=tls`. A renewed certificate is presented by the next connection
//! once it is read again (SIGHUP), and one that cannot be read leaves the old one in use.
//! The certificates are made by `openssl` for this test.

mod common;

use common::tls::{Conn, certificate, tls_lines};
use common::{WAIT, config, start};
use freecall_testkit::Phone;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A phone's TLS connection to `addr`, trusting only `ca`: Err when the handshake fails
/// (the switch presents another certificate).
async fn connect(addr: std::net::SocketAddr, ca: &Path) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

const SDP: &str = "v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

#[tokio::test]
async fn a_phone_on_tls_calls_a_carrier_and_gets_the_bye_on_its_connection() {
    let dir = common::daemon::temp_dir("tls-call");
    let (cert, key, ca) = certificate(&dir, "switch-a");
    let trunk = Phone::bind("carrier").await;
    let cfg = config(&[trunk.addr], &tls_lines(&cert, &key), "", "127.0.0.1");
    let switch = start(&cfg).await;
    let tls = switch.tls_addr.expect("listening for TLS");

    let mut phone = Conn::new(
        connect(tls, &ca)
            .await
            .expect("the switch's certificate is trusted"),
    );
    let me = phone.stream.get_ref().0.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:0212345678@{tls};transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS {me};branch=z9hG4bKtls1;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:0311111111@127.0.0.1>;tag=p1\r\nTo: <sip:0212345678@{tls}>\r\n\
Call-ID: tls-call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:phone@{me};transport=tls>\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    phone.send(&invite).await;

    // The carrier, on UDP, is asked and answers.
    let (to_trunk, from) = trunk.expect_request("INVITE", WAIT).await;
    let leg = trunk.leg_from_request(&to_trunk, from, "c1");
    let answer = trunk.response(&to_trunk, 200, "OK", "c1", Some(SDP));
    trunk.send(from, &answer).await;

    // The phone gets the answer on its TLS connection, with a Contact for TLS.
    let ok = phone.final_response().await;
    assert_eq!(ok.status(), Some(200));
    let contact = ok.contact_uri.clone().unwrap();
    assert_eq!(
        contact,
        format!("sip:freecall@{tls};transport=tls"),
        "the switch's Contact names its TLS port"
    );
    let to = ok.to.clone();
    phone
        .send(&format!(
            "ACK {contact} SIP/2.0\r\nVia: SIP/2.0/TLS {me};branch=z9hG4bKtls2;rport\r\nMax-Forwards: 70\r\n\
From: <sip:0311111111@127.0.0.1>;tag=p1\r\nTo: {to}\r\nCall-ID: tls-call-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
    let (ack, _) = trunk.expect_request("ACK", WAIT).await;
    assert_eq!(ack.call_id, to_trunk.call_id);

    // The carrier hangs up: the BYE reaches the phone on the same TLS connection.
    let mut leg = leg;
    let bye = trunk.request(&mut leg, "BYE", None);
    trunk.send(from, &bye).await;
    let to_phone = phone.next().await;
    assert_eq!(to_phone.method().map(|m| m.as_str()), Some("BYE"));
    assert_eq!(to_phone.call_id, "tls-call-1");
    let via = to_phone.header("Via").unwrap();
    assert!(via.starts_with("SIP/2.0/TLS "), "{via}");
    let ok_bye = format!(
        "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: tls-call-1\r\nCSeq: {} BYE\r\nContent-Length: 0\r\n\r\n",
        to_phone.from, to_phone.to, to_phone.cseq
    );
    phone.send(&ok_bye).await;
    let done = trunk.expect_status(&[200], WAIT).await;
    assert_eq!(done.cseq_method.as_str(), "BYE");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(switch.active_calls().await, 0);
}

#[tokio::test]
async fn a_renewed_certificate_is_presented_once_read_again_and_a_bad_one_changes_nothing() {
    let dir = common::daemon::temp_dir("tls-reload");
    let (old_cert, old_key, old_ca) = certificate(&dir, "switch-old");
    let (new_cert, new_key, new_ca) = certificate(&dir, "switch-new");
    // The files the configuration names; renewing a certificate overwrites them.
    let (cert, key) = (dir.join("in-use.crt"), dir.join("in-use.key"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    let cfg = config(&[], &tls_lines(&cert, &key), "", "127.0.0.1");
    let switch = start(&cfg).await;
    let tls = switch.tls_addr.unwrap();
    assert!(connect(tls, &old_ca).await.is_ok());
    assert!(
        connect(tls, &new_ca).await.is_err(),
        "a phone that trusts only the new certificate is refused before the renewal"
    );

    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    switch
        .reload_certificate(&c, &k)
        .expect("the renewed files read");
    assert!(
        connect(tls, &new_ca).await.is_ok(),
        "the renewed certificate is presented"
    );
    assert!(connect(tls, &old_ca).await.is_err());

    // A certificate whose key is another's: refused, the one in use stays.
    std::fs::copy(&old_key, &key).unwrap();
    let refused = switch.reload_certificate(&c, &k).unwrap_err();
    assert!(refused.contains("does not belong"), "{refused}");
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(switch.reload_certificate(&c, &k).is_err());
    assert!(connect(tls, &new_ca).await.is_ok(), "still the renewed one");
}

#[test]
fn the_configuration_names_what_is_wrong_with_tls() {
    let dir = common::daemon::temp_dir("tls-config");
    let missing = freecall::config::Config::from_toml(&format!(
        "[sip]\nlisten = \"127.0.0.1:5060\"\ntls_listen = \"127.0.0.1:5061\"\n\
tls_certificate = \"{0}/none.crt\"\ntls_private_key = \"{0}/none.key\"\n\
[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 20100\n",
        dir.display()
    ))
    .unwrap_err()
    .to_string();
    assert!(missing.contains("sip.tls_certificate"), "{missing}");
    assert!(missing.contains("none.crt"), "{missing}");
    let trunk = freecall::config::Config::from_toml(
        "[sip]\nlisten = \"127.0.0.1:5060\"\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 20100\n\
[[trunks]]\nname = \"pstn\"\naddress = \"192.0.2.7:5061\"\ntransport = \"tls\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        trunk.contains("trunks[0].transport: tls needs sip.tls_listen"),
        "{trunk}"
    );
    // A trunk on TLS: its authorities must be readable and its name a name.
    let (cert, key, _) = certificate(&dir, "switch-conf");
    let base = format!(
        "[sip]\nlisten = \"127.0.0.1:5060\"\n{}\n[media]\naddress = \"127.0.0.1\"\nport_min = 20000\nport_max = 20100\n",
        tls_lines(&cert, &key)
    );
    let wrong = |trunk: &str| {
        freecall::config::Config::from_toml(&format!("{base}[[trunks]]\nname = \"pstn\"\n{trunk}"))
            .unwrap_err()
            .to_string()
    };
    let no_ca = wrong(&format!(
        "address = \"192.0.2.7:5061\"\ntransport = \"tls\"\ntls_ca = \"{}/none.pem\"\n",
        dir.display()
    ));
    assert!(
        no_ca.contains("trunks[0].tls_ca") && no_ca.contains("none.pem"),
        "{no_ca}"
    );
    let bad_name = wrong(
        "address = \"192.0.2.7:5061\"\ntransport = \"tls\"\ntls_server_name = \"not a name\"\n",
    );
    assert!(
        bad_name.contains("'not a name' is not a host name"),
        "{bad_name}"
    );
    let not_tls = wrong("address = \"192.0.2.7\"\ntls_server_name = \"carrier.test\"\n");
    assert!(
        not_tls.contains("only for a trunk with transport = \"tls\""),
        "{not_tls}"
    );
}

/// Whether a phone trusting `ca` can connect to `addr` now.
fn trusted(addr: std::net::SocketAddr, ca: &Path) -> bool {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(connect(addr, ca))
        .is_ok()
}

#[test]
fn an_independent_phone_calls_over_tls_and_sighup_renews_the_certificate() {
    use common::daemon::{Daemon, free_port, shipped_config, wait_ready};
    let dir = common::daemon::temp_dir("tls-daemon");
    let (old_cert, old_key, old_ca) = certificate(&dir, "daemon-old");
    let (new_cert, new_key, new_ca) = certificate(&dir, "daemon-new");
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    let (sip_port, trunk_port, tls_port) = (free_port(), free_port(), free_port());
    // The shipped configuration with its TLS lines filled in.
    let conf = shipped_config(
        sip_port,
        &format!("127.0.0.1:{trunk_port}"),
        free_port(),
        46000,
        &[
            (
                "# tls_listen = \"0.0.0.0:5061\"",
                format!("tls_listen = \"127.0.0.1:{tls_port}\""),
            ),
            (
                "# tls_certificate = \"/etc/freecall/tls/fullchain.pem\"",
                format!("tls_certificate = \"{}\"", cert.display()),
            ),
            (
                "# tls_private_key = \"/etc/freecall/tls/privkey.pem\"",
                format!("tls_private_key = \"{}\"", key.display()),
            ),
        ],
    );
    let conf_path = dir.join("freecall.toml");
    std::fs::write(&conf_path, conf).unwrap();
    let db = dir.join("freecall.db").display().to_string();
    let daemon = Daemon::spawn(
        &conf_path.display().to_string(),
        &[("FREECALL__DATABASE__URL", db)],
    );
    wait_ready(format!("127.0.0.1:{sip_port}").parse().unwrap());
    let tls: std::net::SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();

    // pjsua2 calls over TLS, checking the switch's certificate; the carrier is on UDP.
    let call = |ca: &Path| {
        common::daemon::pjsua_call(&[
            "--switch",
            &tls.to_string(),
            "--caller-tls-ca",
            &ca.display().to_string(),
            "--number",
            "0212345678",
            "--callee-port",
            &trunk_port.to_string(),
            "--seconds",
            "1.5",
        ])
    };
    let report = call(&old_ca);
    eprintln!("over TLS: {report}");
    assert!(trusted(tls, &old_ca) && !trusted(tls, &new_ca));

    // The certificate is renewed in place and the switch told with SIGHUP.
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    daemon.signal("-HUP");
    let renewed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        trusted(tls, &new_ca)
    });
    assert!(renewed, "the renewed certificate is presented after SIGHUP");
    assert!(!trusted(tls, &old_ca));
    call(&new_ca);
}
