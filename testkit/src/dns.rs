//! A DNS server on loopback answering the records a test gives it (and nothing else), so
//! trunks given by host name are resolved without the real network. It counts the
//! questions it was asked; the test can change the records while the switch runs.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NAPTR, SRV};
use hickory_proto::rr::{Name, RData, Record};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

pub struct DnsServer {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<Record>>>,
    asked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// A server on 127.0.0.1 (UDP, a port of the kernel's choosing) with `records`.
    pub async fn start(records: Vec<Record>) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS");
        let addr = socket.local_addr().expect("DNS address");
        let records = Arc::new(Mutex::new(records));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (zone, log) = (records.clone(), asked.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                // An error here is an ICMP "port unreachable" for an answer sent to a
                // client that had gone: the next query still comes.
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let answer = answer(&query, &zone.lock().unwrap(), &log);
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        DnsServer {
            addr,
            records,
            asked,
            task,
        }
    }

    /// Replace every record (a carrier moving its servers).
    pub fn set(&self, records: Vec<Record>) {
        *self.records.lock().unwrap() = records;
    }

    /// The questions asked so far, as `TYPE name` (`SRV _sip._udp.carrier.test.`).
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(query: &Message, zone: &[Record], asked: &Mutex<Vec<String>>) -> Message {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.queries = query.queries.clone();
    for q in &query.queries {
        asked
            .lock()
            .unwrap()
            .push(format!("{} {}", q.query_type(), q.name()));
        let same_name = |r: &&Record| r.name.to_lowercase() == q.name().to_lowercase();
        let found: Vec<Record> = zone
            .iter()
            .filter(same_name)
            .filter(|r| r.record_type() == q.query_type())
            .cloned()
            .collect();
        if found.is_empty() && !zone.iter().any(|r| same_name(&r)) {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
        reply.answers.extend(found);
    }
    reply
}

fn name(n: &str) -> Name {
    Name::from_ascii(if n.ends_with('.') {
        n.to_string()
    } else {
        format!("{n}.")
    })
    .expect("a DNS name")
}

/// An SRV record: `_sip._udp.carrier.test` → `target:port`.
pub fn srv(owner: &str, ttl: u32, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

/// An A record.
pub fn a(owner: &str, ttl: u32, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(ip)))
}

/// A NAPTR record pointing at an SRV name (`service`: `SIP+D2U`, `SIP+D2T`).
pub fn naptr(owner: &str, ttl: u32, order: u16, service: &str, replacement: &str) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::NAPTR(NAPTR::new(
            order,
            10,
            b"s".to_vec().into_boxed_slice(),
            service.as_bytes().to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            name(replacement),
        )),
    )
}
