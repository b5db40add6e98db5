#!/usr/bin/env python3
"""Independent-SIP-client call test for freecall, using pjsua2 (PyPI: pjsua2-python).

One process, one pjsua2 Endpoint, two UDP transports and two local accounts:

  * callee ("trunk"): UDP on 127.0.0.1:--callee-port, auto-answers any INVITE with
    200, plays a tone of --callee-freq Hz and records what it receives;
  * caller: UDP on 127.0.0.1:--caller-port (0 = any free port), calls
    sip:<--number>@<--switch>, plays a tone of --caller-freq Hz and records what it
    receives.

After --seconds of talk the caller (or, with --hangup callee, the callee) hangs up.
The recordings are analysed with a Goertzel filter; one JSON line is printed and the
exit status is 0 only if both directions carried the expected tone and both legs went
CONFIRMED -> DISCONNECTED cleanly.

Exit codes: 0 pass, 1 test failed, 2 usage / pjsua2 not importable / setup error,
124 hard watchdog fired.

Network: everything is bound to and sent to 127.0.0.1 (or --switch, which must be a
loopback address). Every wait loop is bounded by a deadline.
"""

import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
import wave

RATE = 8000  # conference bridge / WAV rate (narrowband: PCMU / PCMA)


# --------------------------------------------------------------------------- audio

def make_tone_wav(path, freq, seconds=2.0, amplitude=0.3, rate=RATE):
    """Write a 16-bit mono WAV with a sine tone (integer number of cycles -> loops cleanly)."""
    n = int(rate * seconds)
    cycles = max(1, round(freq * n / rate))
    frames = bytearray()
    for i in range(n):
        v = amplitude * math.sin(2.0 * math.pi * cycles * i / n)
        frames += struct.pack("<h", int(round(v * 32767)))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def read_wav(path):
    """Return (samples in [-1, 1], rate). Missing / empty / broken file -> ([], RATE)."""
    try:
        with wave.open(path, "rb") as w:
            rate = w.getframerate()
            ch = w.getnchannels()
            sw = w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error):
        return [], RATE
    if sw != 2 or not raw:
        return [], rate
    vals = struct.unpack("<%dh" % (len(raw) // 2), raw[: len(raw) // 2 * 2])
    if ch > 1:
        vals = vals[::ch]
    return [v / 32768.0 for v in vals], rate


def goertzel_power(block, rate, freq):
    """Power of `freq` in `block`, normalised so a full-scale sine gives ~1.0 (A^2)."""
    n = len(block)
    if n == 0:
        return 0.0
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in block:
        s0 = x + coeff * s1 - s2
        s2 = s1
        s1 = s0
    p = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return max(p, 0.0) / ((n / 2.0) ** 2)


def db(p):
    return max(-200.0, round(10.0 * math.log10(p), 1)) if p > 0 else -200.0


def analyse(path, target, other, noise, min_dbfs, ratio):
    """Analyse a recording in 100 ms blocks.

    A block "has the tone" if the target power is >= min_dbfs and >= ratio x the power
    at the other tone and at the noise frequency. Overall levels are mean block powers.
    """
    samples, rate = read_wav(path)
    blk = max(1, rate // 10)
    nblocks = len(samples) // blk
    pt = po = pn = 0.0
    good = 0
    floor = 10 ** (min_dbfs / 10.0)
    for b in range(nblocks):
        block = samples[b * blk:(b + 1) * blk]
        t = goertzel_power(block, rate, target)
        o = goertzel_power(block, rate, other)
        z = goertzel_power(block, rate, noise)
        pt += t
        po += o
        pn += z
        if t >= floor and t >= ratio * o and t >= ratio * z:
            good += 1
    if nblocks:
        pt, po, pn = pt / nblocks, po / nblocks, pn / nblocks
    rms = math.sqrt(sum(x * x for x in samples) / len(samples)) if samples else 0.0
    return {
        "file": path,
        "rate": rate,
        "recorded_s": round(len(samples) / float(rate), 2) if rate else 0.0,
        "target_hz": target,
        "other_hz": other,
        "noise_hz": noise,
        "target_dbfs": db(pt),
        "other_dbfs": db(po),
        "noise_dbfs": db(pn),
        "rms_dbfs": db(rms * rms),
        "tone_s": round(good * blk / float(rate), 2),
        "_pt": pt,
        "_po": po,
        "_pn": pn,
    }


# --------------------------------------------------------------------------- SIP log

_MSG_RE = re.compile(r"\b(TX|RX) \d+ bytes (Request|Response) msg (\S+) \(.*?\) (?:to|from) \S+ (\S+?):\s*$")


def parse_sip_log(path):
    """Parse the pjsip log file (msg logging, level >= 4) into a list of
    (direction, kind, summary, call_id, peer), e.g. ("RX", "Response", "200/BYE", "abc", "127.0.0.1:5060")."""
    out = []
    try:
        with open(path, "r", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    i = 0
    while i < len(lines):
        m = _MSG_RE.search(lines[i])
        i += 1
        if not m:
            continue
        direction, kind, what, peer = m.groups()
        call_id = None
        while i < len(lines) and not lines[i].startswith("--end msg--"):
            low = lines[i].lower()
            if call_id is None and (low.startswith("call-id:") or low.startswith("i:")):
                call_id = lines[i].split(":", 1)[1].strip()
            i += 1
        what = what.split("/cseq=")[0]
        out.append((direction, kind, what, call_id, peer))
    return out


# --------------------------------------------------------------------------- args

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--switch", default="127.0.0.1:5060",
                    help="host:port the caller sends its INVITE to (default 127.0.0.1:5060)")
    ap.add_argument("--number", default="0212345678", help="user part of the Request-URI")
    ap.add_argument("--caller-user", default="0311111111", help="user part of the caller's From/Contact")
    ap.add_argument("--callee-port", type=int, default=5062, help="callee (trunk) UDP port on 127.0.0.1")
    ap.add_argument("--caller-port", type=int, default=0, help="caller UDP port (0 = any free port)")
    ap.add_argument("--caller-address", default="127.0.0.1",
                    help="loopback address the caller binds (another source than the trunk's)")
    ap.add_argument("--public-address", default=None,
                    help="address both parties write into Via, Contact and SDP instead of the one they "
                         "bind (an impairment proxy that mirrors their ports there stands between)")
    ap.add_argument("--caller-tls-ca", default=None,
                    help="the caller speaks SIP over TLS to --switch (its TLS port), checking the "
                         "switch's certificate against this CA file (PEM)")
    ap.add_argument("--await-bye-answer", action="store_true",
                    help="after the hang-up, keep the hanging-up side running until the 200 to its "
                         "BYE shows in the log, at most 6 s (four retransmissions): on a lossy network "
                         "it may take retransmissions after the other side is already down, and the "
                         "log is not always written at once")
    ap.add_argument("--auth-user", default=None, help="SIP digest user name (answer 401/407 challenges)")
    ap.add_argument("--auth-password", default=None, help="SIP digest password")
    ap.add_argument("--auth-realm", default="*", help="digest realm the credentials are for (* = any)")
    ap.add_argument("--caller-rtp-port", type=int, default=21000, help="first RTP port tried by the caller")
    ap.add_argument("--callee-rtp-port", type=int, default=23000, help="first RTP port tried by the callee")
    ap.add_argument("--seconds", type=float, default=3.0, help="talk time before hang-up (default 3)")
    ap.add_argument("--hangup", choices=["caller", "callee"], default="caller", help="which side sends BYE")
    ap.add_argument("--codec", choices=["PCMU", "PCMA"], default="PCMU", help="only codec offered/accepted")
    ap.add_argument("--caller-freq", type=float, default=1000.0, help="tone the caller sends (F_A)")
    ap.add_argument("--callee-freq", type=float, default=1500.0, help="tone the callee sends (F_B)")
    ap.add_argument("--noise-freq", type=float, default=2700.0, help="reference frequency for the noise floor")
    ap.add_argument("--ratio", type=float, default=10.0, help="target power must be >= ratio x other/noise power")
    ap.add_argument("--min-dbfs", type=float, default=-40.0, help="minimum target level in a block (dBFS)")
    ap.add_argument("--min-tone-fraction", type=float, default=0.5,
                    help="tone must be present for >= this fraction of --seconds")
    ap.add_argument("--answer-delay", type=float, default=0.0,
                    help="callee sends 180 and answers after this many seconds (default 0: 200 at once)")
    ap.add_argument("--setup-timeout", type=float, default=7.0,
                    help="max seconds from INVITE until both legs have media (includes --answer-delay)")
    ap.add_argument("--teardown-timeout", type=float, default=4.0, help="max seconds for BYE to complete")
    ap.add_argument("--log-level", type=int, default=1, help="pjsua2 console log level (0-6, default 1)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temp dir (tones, recordings, pjsip.log); always kept on failure")
    a = ap.parse_args(argv)
    host, sep, port = a.switch.rpartition(":")
    if not sep or not port.isdigit() or not host:
        ap.error("--switch must be host:port")
    if not (host.startswith("127.") or host == "localhost"):
        ap.error("--switch must be an IPv4 loopback address (127.0.0.0/8 or localhost)")
    if not a.caller_address.startswith("127."):
        ap.error("--caller-address must be an IPv4 loopback address (127.0.0.0/8)")
    if a.seconds <= 0 or a.seconds > 300:
        ap.error("--seconds must be in (0, 300]")
    return a


# --------------------------------------------------------------------------- test

def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.monotonic()

    # Hard watchdog: whatever happens inside pjsip, the process ends by itself.
    # Normal worst case is setup + seconds + teardown + ~1.5 s (libDestroy, analysis).
    hard_limit = args.setup_timeout + args.seconds * 1.03 + args.teardown_timeout + 4.0

    # pjlib logs to fd 1 (before libInit applies our log config); keep stdout for the
    # single JSON line by pointing fd 1 at stderr while pjsua2 is alive.
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)

    def emit(line):
        os.write(real_stdout, (line + "\n").encode())

    def _watchdog():
        emit(json.dumps({"ok": False, "errors": ["watchdog: test exceeded %.0f s" % hard_limit]}))
        os._exit(124)

    wd = threading.Timer(hard_limit, _watchdog)
    wd.daemon = True
    wd.start()

    try:
        import pjsua2 as pj
    except ImportError as e:
        emit(json.dumps({"ok": False, "errors": ["cannot import pjsua2 (pip install pjsua2-python): %s" % e]}))
        wd.cancel()
        return 2

    tmp = tempfile.mkdtemp(prefix="pjsua_call_")
    files = {
        "caller_tone": os.path.join(tmp, "caller_tone_%d.wav" % args.caller_freq),
        "callee_tone": os.path.join(tmp, "callee_tone_%d.wav" % args.callee_freq),
        "caller_rec": os.path.join(tmp, "caller_received.wav"),
        "callee_rec": os.path.join(tmp, "callee_received.wav"),
        "log": os.path.join(tmp, "pjsip.log"),
    }
    make_tone_wav(files["caller_tone"], args.caller_freq)
    make_tone_wav(files["callee_tone"], args.callee_freq)

    errors = []
    ST = {
        pj.PJSIP_INV_STATE_NULL: "NULL",
        pj.PJSIP_INV_STATE_CALLING: "CALLING",
        pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
        pj.PJSIP_INV_STATE_EARLY: "EARLY",
        pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
        pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
        pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
    }

    class Leg(object):
        """Per-side bookkeeping (plain Python, survives the pjsua2 objects)."""

        def __init__(self, name, tone_file, rec_file):
            self.name = name
            self.tone_file = tone_file
            self.rec_file = rec_file
            self.states = []
            self.last_status = None
            self.last_reason = ""
            self.sip = []  # from the pjsip message log: "TX INVITE", "RX 180/INVITE", ...
            self.call_id = None
            self.local_addr = None
            self.codec = None
            self.remote_rtp = None
            self.media_active = False
            self.media_updates = 0
            self.connect_duration = None
            self.call = None
            self.player = None
            self.recorder = None
            self.aud_med = None
            self.request_uri = None
            self.remote_uri = None
            self.t_confirmed = None
            self.t_disconnected = None
            self.cb_errors = []

        @property
        def state(self):
            return self.states[-1] if self.states else "NONE"

        def report(self):
            return {
                "states": self.states,
                "last_status": self.last_status,
                "last_reason": self.last_reason,
                "sip": self.sip,
                "media_active": self.media_active,
                "media_updates": self.media_updates,
                "codec": self.codec,
                "remote_rtp": self.remote_rtp,
                "connect_duration_s": self.connect_duration,
                "remote_uri": self.remote_uri,
            }

    caller = Leg("caller", files["caller_tone"], files["caller_rec"])
    callee = Leg("callee", files["callee_tone"], files["callee_rec"])
    extra_calls = []  # unexpected extra incoming calls, kept referenced (GC pitfall)

    class TestCall(pj.Call):
        def __init__(self, acc, leg, call_id=pj.PJSUA_INVALID_ID):
            pj.Call.__init__(self, acc, call_id)
            self.leg = leg

        def onCallState(self, prm):
            try:
                ci = self.getInfo()
                leg = self.leg
                name = ST.get(ci.state, str(ci.state))
                if not leg.states or leg.states[-1] != name:
                    leg.states.append(name)
                leg.last_status = ci.lastStatusCode
                leg.last_reason = ci.lastReason
                leg.remote_uri = ci.remoteUri
                leg.call_id = ci.callIdString
                if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and leg.t_confirmed is None:
                    leg.t_confirmed = time.monotonic()
                if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                    leg.t_disconnected = time.monotonic()
                    leg.connect_duration = round(ci.connectDuration.sec + ci.connectDuration.msec / 1000.0, 2)
            except Exception as e:  # never let an exception escape into C++
                self.leg.cb_errors.append("onCallState: %r" % (e,))

        def onCallMediaState(self, prm):
            try:
                leg = self.leg
                ci = self.getInfo()
                for mi in ci.media:
                    if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                        continue
                    # (Re)connect on every ACTIVE media update: a re-INVITE from the switch
                    # may recreate the stream. startTransmit on an existing link is harmless.
                    leg.media_updates += 1
                    try:
                        si = self.getStreamInfo(mi.index)
                        leg.codec = "%s/%d" % (si.codecName, si.codecClockRate)
                        leg.remote_rtp = si.remoteRtpAddress
                    except pj.Error:
                        pass
                    am = self.getAudioMedia(mi.index)
                    leg.aud_med = am  # keep a reference (GC pitfall)
                    if leg.recorder is None:
                        leg.recorder = pj.AudioMediaRecorder()
                        leg.recorder.createRecorder(leg.rec_file)
                    leg.player.startTransmit(am)
                    am.startTransmit(leg.recorder)
                    leg.media_active = True
            except Exception as e:
                self.leg.cb_errors.append("onCallMediaState: %r" % (e,))

    class CalleeAccount(pj.Account):
        def __init__(self):
            pj.Account.__init__(self)
            self.pending_answer = None

        def onIncomingCall(self, prm):
            try:
                if callee.call is not None:
                    c = TestCall(self, Leg("extra", "", ""), prm.callId)
                    extra_calls.append(c)
                    op = pj.CallOpParam()
                    op.statusCode = 486
                    c.hangup(op)
                    return
                try:
                    first = prm.rdata.wholeMsg.split("\r\n", 1)[0]
                    callee.request_uri = first.split(" ")[1]
                except Exception:
                    pass
                c = TestCall(self, callee, prm.callId)
                callee.call = c
                op = pj.CallOpParam()
                if args.answer_delay > 0:
                    op.statusCode = 180
                    c.answer(op)
                    self.pending_answer = time.monotonic() + args.answer_delay
                else:
                    op.statusCode = 200
                    c.answer(op)
            except Exception as e:
                callee.cb_errors.append("onIncomingCall: %r" % (e,))

    class CallerAccount(pj.Account):
        def onIncomingCall(self, prm):
            # The caller never expects a call; reject it (keep the object referenced).
            try:
                c = TestCall(self, Leg("extra", "", ""), prm.callId)
                extra_calls.append(c)
                op = pj.CallOpParam()
                op.statusCode = 486
                c.hangup(op)
            except Exception as e:
                caller.cb_errors.append("caller onIncomingCall: %r" % (e,))

    class TestEndpoint(pj.Endpoint):
        """Routes every incoming INVITE to the callee account, whatever its Request-URI."""
        callee_acc_id = None

        def onSelectAccount(self, prm):
            if self.callee_acc_id is not None:
                prm.accountIndex = self.callee_acc_id

    # ---- endpoint
    ep = TestEndpoint()
    if args.log_level < 4:  # libCreate logs its banner at level 4-5 before our config applies
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        ep.libCreate()
        os.dup2(2, 1)
        os.close(devnull)
    else:
        ep.libCreate()
    lib_started = False
    acc_caller = acc_callee = None
    hang_leg = caller
    placed = False
    try:
        epc = pj.EpConfig()
        epc.uaConfig.threadCnt = 0
        epc.uaConfig.mainThreadOnly = True
        epc.uaConfig.maxCalls = 4
        epc.uaConfig.userAgent = "freecall-interop-pjsua2"
        epc.logConfig.level = max(4, args.log_level)  # >= 4: SIP messages go to the log file
        epc.logConfig.consoleLevel = args.log_level
        epc.logConfig.msgLogging = True
        epc.logConfig.filename = files["log"]
        epc.medConfig.clockRate = RATE
        epc.medConfig.sndClockRate = RATE
        epc.medConfig.channelCount = 1
        epc.medConfig.noVad = True
        epc.medConfig.ecTailLen = 0
        epc.medConfig.threadCnt = 1
        ep.libInit(epc)

        tc = pj.TransportConfig()
        tc.boundAddress = "127.0.0.1"
        tc.port = args.callee_port
        if args.public_address:
            tc.publicAddress = args.public_address
        try:
            tid_callee = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        except pj.Error as e:
            raise RuntimeError("cannot bind callee UDP 127.0.0.1:%d: %s" % (args.callee_port, e.info()))
        tc = pj.TransportConfig()
        tc.boundAddress = args.caller_address
        tc.port = args.caller_port
        if args.public_address:
            tc.publicAddress = args.public_address
        caller_kind = pj.PJSIP_TRANSPORT_UDP
        if args.caller_tls_ca:
            caller_kind = pj.PJSIP_TRANSPORT_TLS
            tc.tlsConfig.CaListFile = args.caller_tls_ca
            tc.tlsConfig.verifyServer = True
        try:
            tid_caller = ep.transportCreate(caller_kind, tc)
        except pj.Error as e:
            raise RuntimeError("cannot bind caller %s:%d: %s" % (args.caller_address, args.caller_port, e.info()))
        caller_port = ep.transportGetInfo(tid_caller).localName
        caller.local_addr = caller_port
        callee.local_addr = ep.transportGetInfo(tid_callee).localName

        ep.libStart()
        lib_started = True
        ep.audDevManager().setNullDev()

        # codecs: only the requested one
        want = args.codec + "/8000"
        found = False
        for ci in ep.codecEnum2():
            cid = ci.codecId
            if cid.startswith(want):
                ep.codecSetPriority(cid, 255)
                found = True
            else:
                ep.codecSetPriority(cid, 0)
        if not found:
            raise RuntimeError("codec %s not available in this pjsua2 build" % args.codec)

        def acc_cfg(uri, tid, rtp_port):
            ac = pj.AccountConfig()
            ac.idUri = uri
            ac.sipConfig.transportId = tid
            ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
            ac.mediaConfig.transportConfig.port = rtp_port
            ac.mediaConfig.transportConfig.portRange = 1000
            if args.public_address:
                ac.mediaConfig.transportConfig.publicAddress = args.public_address
            ac.natConfig.iceEnabled = False
            ac.natConfig.sdpNatRewriteUse = False
            ac.natConfig.viaRewriteUse = False
            ac.natConfig.contactRewriteUse = False
            ac.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
            ac.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
            ac.callConfig.timerUse = pj.PJSUA_SIP_TIMER_INACTIVE
            ac.regConfig.registerOnAdd = False
            return ac

        acc_callee = CalleeAccount()
        acc_callee.create(acc_cfg("sip:trunk@127.0.0.1:%d" % args.callee_port, tid_callee,
                                  args.callee_rtp_port), True)
        ep.callee_acc_id = acc_callee.getId()
        acc_caller = CallerAccount()
        caller_cfg = acc_cfg("sip:%s@%s" % (args.caller_user, caller_port), tid_caller,
                             args.caller_rtp_port)
        if args.auth_user is not None:
            caller_cfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", args.auth_realm, args.auth_user, 0, args.auth_password or ""))
        acc_caller.create(caller_cfg, False)

        for leg in (caller, callee):
            leg.player = pj.AudioMediaPlayer()
            leg.player.createPlayer(leg.tone_file, 0)  # 0 = loop

        # ---- place the call
        dest = "sip:%s@%s" % (args.number, args.switch)
        if args.caller_tls_ca:
            dest += ";transport=tls"
        caller.call = TestCall(acc_caller, caller)
        op = pj.CallOpParam(True)
        try:
            caller.call.makeCall(dest, op)
        except pj.Error as e:
            raise RuntimeError("makeCall(%s) failed: %s" % (dest, e.info()))
        placed = True

        def pump(until_fn, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ep.libHandleEvents(20)
                if acc_callee.pending_answer and time.monotonic() >= acc_callee.pending_answer:
                    acc_callee.pending_answer = None
                    if callee.call is not None and callee.state not in ("DISCONNECTED",):
                        o = pj.CallOpParam()
                        o.statusCode = 200
                        try:
                            callee.call.answer(o)
                        except pj.Error as e:
                            callee.cb_errors.append("answer: %s" % e.info())
                if until_fn():
                    return True
            return False

        def both_up():
            return (caller.state == "CONFIRMED" and callee.state == "CONFIRMED"
                    and caller.media_active and callee.media_active)

        def any_down():
            return caller.state == "DISCONNECTED" or callee.state == "DISCONNECTED"

        up = pump(lambda: both_up() or any_down(), args.setup_timeout)
        if not both_up():
            if not up:
                errors.append("call not established within %.1f s (caller=%s, callee=%s)"
                              % (args.setup_timeout, caller.state, callee.state))
            else:
                errors.append("call failed during setup (caller=%s %s %s, callee=%s)"
                              % (caller.state, caller.last_status, caller.last_reason, callee.state))
        else:
            # ---- talk
            t_talk = time.monotonic()
            pump(any_down, args.seconds)
            if any_down():
                errors.append("call dropped after %.1f s of talk (caller=%s %s, callee=%s %s)"
                              % (time.monotonic() - t_talk, caller.state, caller.last_status,
                                 callee.state, callee.last_status))

        # ---- tear down: the chosen side sends BYE (or CANCEL / reject when not set up)
        hang_leg = callee if (args.hangup == "callee" and callee.call is not None
                              and callee.state == "CONFIRMED") else caller
        for leg in (hang_leg, caller, callee):
            if leg.call is not None and leg.state != "DISCONNECTED":
                try:
                    leg.call.hangup(pj.CallOpParam(True))
                except pj.Error as e:
                    leg.cb_errors.append("hangup: %s" % e.info())
                if leg is hang_leg:
                    # give the BYE a chance to reach the far end before anything else
                    pump(lambda: caller.state == "DISCONNECTED"
                         and (callee.call is None or callee.state == "DISCONNECTED"),
                         args.teardown_timeout)
        if not pump(lambda: caller.state == "DISCONNECTED"
                    and (callee.call is None or callee.state == "DISCONNECTED"), 0.05):
            errors.append("call not torn down within %.1f s (caller=%s, callee=%s)"
                          % (args.teardown_timeout, caller.state, callee.state))
        if args.await_bye_answer and hang_leg.call_id:
            def bye_answered():
                return any(d == "RX" and w == "200/BYE" and cid == hang_leg.call_id
                           for (d, k, w, cid, peer) in parse_sip_log(files["log"]))
            pump(bye_answered, min(args.teardown_timeout, 6.0))
        # let the final ACK / 200-to-BYE / recorder frames flush
        pump(lambda: False, 0.2)
    except RuntimeError as e:
        errors.append(str(e))
    except pj.Error as e:
        errors.append("pjsua2 error: %s" % e.info())
    finally:
        # Destroy media & calls in the main thread BEFORE libDestroy (pjsua2 GC pitfall):
        # recorders first so their WAV headers are finalised. (No stopTransmit: the call's
        # conference slot is already gone after DISCONNECTED.)
        for leg in (caller, callee):
            leg.recorder = None
            leg.player = None
            leg.aud_med = None
        for leg in (caller, callee):
            leg.call = None
        del extra_calls[:]
        for acc in (acc_caller, acc_callee):
            if acc is not None:
                try:
                    acc.shutdown()
                except Exception:
                    pass
        acc_caller = acc_callee = None
        try:
            ep.libDestroy()
        except Exception as e:
            errors.append("libDestroy: %r" % (e,))
        del ep
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(real_stdout, 1)

    # ---- SIP messages per leg: matched by Call-ID, and (for the direct test, where both
    # legs share one dialog) by the peer not being the leg's own address.
    sip_log = parse_sip_log(files["log"])
    for leg in (caller, callee):
        if leg.call_id:
            leg.sip = ["%s %s" % (d, w) for (d, k, w, cid, peer) in sip_log
                       if cid == leg.call_id and peer != leg.local_addr]
    # ---- analyse
    res_caller = analyse(files["caller_rec"], args.callee_freq, args.caller_freq, args.noise_freq,
                         args.min_dbfs, args.ratio)
    res_callee = analyse(files["callee_rec"], args.caller_freq, args.callee_freq, args.noise_freq,
                         args.min_dbfs, args.ratio)
    min_tone_s = args.min_tone_fraction * args.seconds
    talked = placed and not any(e.startswith(("call not established", "call failed")) for e in errors)
    if talked:
        for who, r in (("caller", res_caller), ("callee", res_callee)):
            if r["_pt"] < args.ratio * max(r["_po"], r["_pn"], 1e-12) or r["tone_s"] < min_tone_s:
                errors.append("%s did not receive %g Hz clearly: %.1f dBFS (other %g Hz %.1f dBFS, "
                              "noise %g Hz %.1f dBFS, need ratio %g), tone present %.2f s, required %.2f s"
                              % (who, r["target_hz"], r["target_dbfs"], r["other_hz"], r["other_dbfs"],
                                 r["noise_hz"], r["noise_dbfs"], args.ratio, r["tone_s"], min_tone_s))

    # ---- signalling checks
    def check_leg(leg):
        s = leg.states
        if "CONFIRMED" not in s:
            errors.append("%s never reached CONFIRMED (states %s, last %s %s)"
                          % (leg.name, s, leg.last_status, leg.last_reason))
        elif "DISCONNECTED" not in s[s.index("CONFIRMED"):]:
            errors.append("%s not DISCONNECTED after CONFIRMED (states %s)" % (leg.name, s))
        for e in leg.cb_errors:
            errors.append("%s: %s" % (leg.name, e))

    if talked:
        check_leg(caller)
        check_leg(callee)
        for leg in (caller, callee):
            if leg.codec and not leg.codec.upper().startswith(args.codec + "/"):
                errors.append("%s negotiated %s, expected %s" % (leg.name, leg.codec, args.codec))
        # the BYE must have been answered 200 (sender side) and answered by us (receiver side)
        other_leg = caller if hang_leg is callee else callee
        if "TX BYE" not in hang_leg.sip or "RX 200/BYE" not in hang_leg.sip:
            errors.append("%s: BYE not sent or not answered 200 (sip %s)" % (hang_leg.name, hang_leg.sip))
        if "RX BYE" not in other_leg.sip or "TX 200/BYE" not in other_leg.sip:
            errors.append("%s: BYE not received or not answered 200 (sip %s)" % (other_leg.name, other_leg.sip))
    else:
        for leg in (caller, callee):
            for e in leg.cb_errors:
                errors.append("%s: %s" % (leg.name, e))

    def pub(r):
        return {k: v for k, v in r.items() if not k.startswith("_") and k != "file"}

    out = {
        "ok": not errors,
        "errors": errors,
        "switch": args.switch,
        "dest": "sip:%s@%s" % (args.number, args.switch),
        "codec": args.codec,
        "hangup": args.hangup,
        "seconds": args.seconds,
        "caller": dict(caller.report(), received=pub(res_caller)),
        "callee": dict(callee.report(), request_uri=callee.request_uri, received=pub(res_callee)),
        "elapsed_s": round(time.monotonic() - t_start, 2),
    }
    if args.keep or errors:
        out["tmpdir"] = tmp
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    wd.cancel()
    emit(json.dumps(out))
    if errors:
        sys.stderr.write("FAIL: " + "; ".join(errors) + "\n")
        return 1 if placed else 2
    sys.stderr.write("PASS\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
