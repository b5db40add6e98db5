//! The pool of even RTP ports (RTCP takes the odd one above).

use std::collections::VecDeque;

pub struct PortPool {
    /// Free ports, handed out from the front and returned to the back, so a port just
    /// released is the last to be reused (late packets of the old call land nowhere).
    free: VecDeque<u16>,
}

impl PortPool {
    pub fn new(min: u16, max: u16) -> PortPool {
        let start = min + (min % 2);
        PortPool {
            free: (start..max).step_by(2).collect(),
        }
    }

    pub fn take(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    pub fn give_back(&mut self, port: u16) {
        self.free.push_back(port);
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }
}
