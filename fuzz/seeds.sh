#!/usr/bin/env bash
# Seed corpora for the fuzz targets, made from the project's fixtures (run from anywhere):
# the RFC 4475 messages for the parser and the call manager, their SDP bodies for sdp,
# and RTP packets of each codec for rtp. cargo fuzz adds what it finds to the same folders.
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
import glob, os, struct
os.makedirs("corpus/sip_parse", exist_ok=True)
os.makedirs("corpus/call_manager", exist_ok=True)
os.makedirs("corpus/sdp", exist_ok=True)
os.makedirs("corpus/rtp", exist_ok=True)
msgs = sorted(glob.glob("../tests/fixtures/rfc4475/*.dat"))
for path in msgs:
    name = os.path.basename(path)
    data = open(path, "rb").read()
    open(f"corpus/sip_parse/{name}", "wb").write(data)
    # One record from the trusted PBX (source 0), then a tick.
    record = bytes([0]) + struct.pack(">H", len(data)) + data + bytes([0x44, 0, 0])
    open(f"corpus/call_manager/{name}", "wb").write(record)
    head, sep, body = data.partition(b"\r\n\r\n")
    if sep and body.startswith(b"v=0"):
        open(f"corpus/sdp/{name}", "wb").write(body)
# A caller's INVITE and the trunk's answer, as a call would have them.
sdp = (b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0 8 96 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n")
open("corpus/sdp/offer.sdp", "wb").write(sdp)
invite = (b"INVITE sip:0212345678@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa1\r\n"
          b"Max-Forwards: 70\r\nFrom: <sip:0311111111@127.0.0.1>;tag=a1\r\nTo: <sip:0212345678@127.0.0.1>\r\n"
          b"Call-ID: c1@pbx\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5070>\r\n"
          b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(sdp)) + sdp
open("corpus/sip_parse/invite.sip", "wb").write(invite)
open("corpus/call_manager/invite.bin", "wb").write(bytes([0]) + struct.pack(">H", len(invite)) + invite + bytes([0x0c, 0, 0]))
for pt, payload in [(0, b"\xff" * 160), (8, b"\xd5" * 160), (96, b"\x08\x0b\xe4\xc1"), (101, b"\x01\x8a\x03\x20")]:
    pkt = struct.pack(">BBHII", 0x80, pt, 1000, 160000, 0x12345678) + payload
    open(f"corpus/rtp/pt{pt}.rtp", "wb").write(pkt)
open("corpus/rtp/rtcp-sr.rtcp", "wb").write(struct.pack(">BBHI", 0x80, 200, 6, 0x12345678) + bytes(20))
PY
echo "seeds: $(ls corpus/sip_parse | wc -l) SIP, $(ls corpus/sdp | wc -l) SDP, $(ls corpus/rtp | wc -l) RTP, $(ls corpus/call_manager | wc -l) call sequences"
