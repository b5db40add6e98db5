//! RTP and RTCP datagrams as a leg sends them: told apart, the header read, the payload
//! decoded by each codec the switch transcodes (libopus included). None may panic.
#![no_main]
use freecall::media::codec::{Codec, Decoder};
use freecall::media::rtp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if rtp::is_rtcp(data) {
        return;
    }
    let Some(h) = rtp::read_header(data) else {
        return;
    };
    let (start, end) = h.payload;
    assert!(start <= end && end <= data.len());
    let payload = &data[start..end];
    let mut out = vec![0i16; 5760];
    for codec in [Codec::Pcmu, Codec::Pcma, Codec::Opus] {
        if let Ok(mut d) = Decoder::new(codec) {
            if let Some(n) = d.decode(payload, &mut out) {
                assert!(n <= out.len());
            }
        }
    }
});
