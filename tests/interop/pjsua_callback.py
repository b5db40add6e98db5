#!/usr/bin/env python3
"""Independent-SIP-client test of a free call-back, using pjsua2 (PyPI: pjsua2-python).

pjsua2 is the carrier's side of both legs the switch dials: one UDP transport on
127.0.0.1:--port that every INVITE reaches, answering by Request-URI user:

  * --issuer NUMBER: the issuer's phone. Answers, plays a tone of --issuer-freq Hz,
    records what it hears (the announcement, ringback, then the visitor), and --press
    seconds after answering presses --digit (RFC 4733, pjsua2's default DTMF method).
  * --visitor NUMBER: the visitor's phone behind a PBX. Answers, plays --visitor-freq Hz,
    records, collects the DTMF digits it receives (the extension), and after --seconds of
    talk hangs up (BYE).

Any other number is answered 486. One JSON line is printed; exit 0 only if both calls
went CONFIRMED -> DISCONNECTED, each side heard the other's tone, the visitor's PBX
received --expect-digits, and the visitor was called only after the digit was pressed.

Network: everything binds to and is sent to 127.0.0.1. Every wait loop is bounded, and a
watchdog ends the process by itself.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pjsua_call import RATE, analyse, make_tone_wav  # noqa: E402


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True, help="UDP port on 127.0.0.1 (the trunk)")
    ap.add_argument("--issuer", required=True, help="the issuer's number (Request-URI user)")
    ap.add_argument("--visitor", required=True, help="the visitor's number (Request-URI user)")
    ap.add_argument("--digit", default="1", help="what the issuer presses")
    ap.add_argument("--press", type=float, default=2.0, help="seconds after answer before pressing")
    ap.add_argument("--expect-digits", default="", help="digits the visitor's PBX must receive")
    ap.add_argument("--issuer-freq", type=float, default=1000.0)
    ap.add_argument("--visitor-freq", type=float, default=1500.0)
    ap.add_argument("--noise-freq", type=float, default=2700.0)
    ap.add_argument("--seconds", type=float, default=3.0, help="talk time before the visitor hangs up")
    ap.add_argument("--ready-file", default=None, help="touched once the transport listens")
    ap.add_argument("--timeout", type=float, default=25.0, help="whole test bound")
    ap.add_argument("--rtp-port", type=int, default=24000)
    return ap.parse_args(argv)


def main():
    args = parse_args(sys.argv[1:])
    t_start = time.monotonic()
    sys.stdout.flush()
    real_stdout = os.dup(1)
    os.dup2(2, 1)

    def emit(obj):
        os.write(real_stdout, (json.dumps(obj) + "\n").encode())

    def _watchdog():
        emit({"ok": False, "errors": ["watchdog: exceeded %.0f s" % (args.timeout + 5)]})
        os._exit(124)

    wd = threading.Timer(args.timeout + 5, _watchdog)
    wd.daemon = True
    wd.start()
    try:
        import pjsua2 as pj
    except ImportError as e:
        emit({"ok": False, "errors": ["cannot import pjsua2: %s" % e]})
        return 2

    tmp = tempfile.mkdtemp(prefix="pjsua_callback_")
    errors = []

    class Leg(object):
        def __init__(self, name, freq):
            self.name = name
            self.freq = freq
            self.tone = os.path.join(tmp, "%s_tone.wav" % name)
            self.rec = os.path.join(tmp, "%s_received.wav" % name)
            make_tone_wav(self.tone, freq)
            self.states = []
            self.digits = ""
            self.call = None
            self.player = None
            self.recorder = None
            self.aud = None
            self.t_confirmed = None
            self.t_incoming = None
            self.pressed_at = None
            self.errors = []
            self.codec = None

        @property
        def state(self):
            return self.states[-1] if self.states else "NONE"

    issuer = Leg("issuer", args.issuer_freq)
    visitor = Leg("visitor", args.visitor_freq)
    extra = []
    names = {
        pj.PJSIP_INV_STATE_CALLING: "CALLING",
        pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
        pj.PJSIP_INV_STATE_EARLY: "EARLY",
        pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
        pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
        pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
    }

    class LegCall(pj.Call):
        def __init__(self, acc, leg, call_id):
            pj.Call.__init__(self, acc, call_id)
            self.leg = leg

        def onCallState(self, prm):
            try:
                ci = self.getInfo()
                name = names.get(ci.state, str(ci.state))
                if not self.leg.states or self.leg.states[-1] != name:
                    self.leg.states.append(name)
                if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.leg.t_confirmed is None:
                    self.leg.t_confirmed = time.monotonic()
            except Exception as e:
                self.leg.errors.append("onCallState: %r" % (e,))

        def onCallMediaState(self, prm):
            try:
                ci = self.getInfo()
                for mi in ci.media:
                    if mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                        continue
                    try:
                        si = self.getStreamInfo(mi.index)
                        self.leg.codec = "%s/%d" % (si.codecName, si.codecClockRate)
                    except pj.Error:
                        pass
                    am = self.getAudioMedia(mi.index)
                    self.leg.aud = am
                    if self.leg.recorder is None:
                        self.leg.recorder = pj.AudioMediaRecorder()
                        self.leg.recorder.createRecorder(self.leg.rec)
                    self.leg.player.startTransmit(am)
                    am.startTransmit(self.leg.recorder)
            except Exception as e:
                self.leg.errors.append("onCallMediaState: %r" % (e,))

        def onDtmfDigit(self, prm):
            try:
                self.leg.digits += prm.digit
            except Exception as e:
                self.leg.errors.append("onDtmfDigit: %r" % (e,))

    class Trunk(pj.Account):
        def onIncomingCall(self, prm):
            try:
                first = prm.rdata.wholeMsg.split("\r\n", 1)[0]
                uri = first.split(" ")[1]
                user = uri.split(":", 1)[1].split("@", 1)[0]
                leg = {args.issuer: issuer, args.visitor: visitor}.get(user)
                if leg is None or leg.call is not None:
                    c = pj.Call(self, prm.callId)
                    extra.append(c)
                    op = pj.CallOpParam()
                    op.statusCode = 486
                    c.hangup(op)
                    errors.append("unexpected INVITE for %s" % user)
                    return
                leg.t_incoming = time.monotonic()
                c = LegCall(self, leg, prm.callId)
                leg.call = c
                op = pj.CallOpParam()
                op.statusCode = 180
                c.answer(op)
                op = pj.CallOpParam()
                op.statusCode = 200
                c.answer(op)
            except Exception as e:
                errors.append("onIncomingCall: %r" % (e,))

    class Ep(pj.Endpoint):
        acc_id = None

        def onSelectAccount(self, prm):
            if self.acc_id is not None:
                prm.accountIndex = self.acc_id

    ep = Ep()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    ep.libCreate()
    os.dup2(2, 1)
    os.close(devnull)
    acc = None
    try:
        epc = pj.EpConfig()
        epc.uaConfig.threadCnt = 0
        epc.uaConfig.mainThreadOnly = True
        epc.uaConfig.maxCalls = 4
        epc.uaConfig.userAgent = "freecall-interop-pjsua2-callback"
        epc.logConfig.level = 1
        epc.logConfig.consoleLevel = 1
        epc.medConfig.clockRate = RATE
        epc.medConfig.sndClockRate = RATE
        epc.medConfig.channelCount = 1
        epc.medConfig.noVad = True
        epc.medConfig.ecTailLen = 0
        ep.libInit(epc)
        tc = pj.TransportConfig()
        tc.boundAddress = "127.0.0.1"
        tc.port = args.port
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        ep.libStart()
        ep.audDevManager().setNullDev()
        for ci in ep.codecEnum2():
            keep = ci.codecId.startswith("PCMU/8000") or ci.codecId.startswith("PCMA/8000")
            ep.codecSetPriority(ci.codecId, 255 if keep else 0)
        ac = pj.AccountConfig()
        ac.idUri = "sip:pbx@127.0.0.1:%d" % args.port
        ac.sipConfig.transportId = tid
        ac.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        ac.mediaConfig.transportConfig.port = args.rtp_port
        ac.mediaConfig.transportConfig.portRange = 1000
        ac.natConfig.iceEnabled = False
        ac.natConfig.sdpNatRewriteUse = False
        ac.natConfig.viaRewriteUse = False
        ac.natConfig.contactRewriteUse = False
        ac.natConfig.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        ac.natConfig.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        ac.callConfig.timerUse = pj.PJSUA_SIP_TIMER_INACTIVE
        ac.regConfig.registerOnAdd = False
        acc = Trunk()
        acc.create(ac, True)
        ep.acc_id = acc.getId()
        for leg in (issuer, visitor):
            leg.player = pj.AudioMediaPlayer()
            leg.player.createPlayer(leg.tone, 0)
        if args.ready_file:
            open(args.ready_file, "w").close()

        deadline = t_start + args.timeout
        hung_up = False
        while time.monotonic() < deadline:
            ep.libHandleEvents(20)
            now = time.monotonic()
            if (issuer.t_confirmed and issuer.pressed_at is None
                    and now >= issuer.t_confirmed + args.press and issuer.state == "CONFIRMED"):
                issuer.pressed_at = now
                try:
                    issuer.call.dialDtmf(args.digit)
                except pj.Error as e:
                    errors.append("dialDtmf: %s" % e.info())
            if (visitor.t_confirmed and not hung_up
                    and now >= visitor.t_confirmed + args.seconds and visitor.state == "CONFIRMED"):
                hung_up = True
                visitor.call.hangup(pj.CallOpParam(True))
            done = all(leg.state == "DISCONNECTED" for leg in (issuer, visitor))
            if done or (issuer.state == "DISCONNECTED" and visitor.call is None and issuer.pressed_at):
                break
        for _ in range(10):
            ep.libHandleEvents(20)
    except pj.Error as e:
        errors.append("pjsua2 error: %s" % e.info())
    finally:
        for leg in (issuer, visitor):
            leg.recorder = None
            leg.player = None
            leg.aud = None
        for leg in (issuer, visitor):
            if leg.call is not None and leg.state != "DISCONNECTED":
                try:
                    leg.call.hangup(pj.CallOpParam(True))
                except pj.Error:
                    pass
            leg.call = None
        del extra[:]
        if acc is not None:
            try:
                acc.shutdown()
            except Exception:
                pass
        acc = None
        try:
            ep.libDestroy()
        except Exception as e:
            errors.append("libDestroy: %r" % (e,))
        del ep
        sys.stdout.flush()
        os.dup2(real_stdout, 1)

    for leg in (issuer, visitor):
        for e in leg.errors:
            errors.append("%s: %s" % (leg.name, e))
        s = leg.states
        if "CONFIRMED" not in s:
            errors.append("%s never answered (states %s)" % (leg.name, s))
        elif "DISCONNECTED" not in s[s.index("CONFIRMED"):]:
            errors.append("%s not hung up (states %s)" % (leg.name, s))
    if visitor.t_incoming and (issuer.pressed_at is None or visitor.t_incoming < issuer.pressed_at):
        errors.append("the visitor was called before the issuer pressed %s" % args.digit)
    if visitor.digits != args.expect_digits:
        errors.append("the visitor's PBX received digits %r, expected %r" % (visitor.digits, args.expect_digits))
    heard_by_issuer = analyse(issuer.rec, args.visitor_freq, args.issuer_freq, args.noise_freq, -40.0, 10.0)
    heard_by_visitor = analyse(visitor.rec, args.issuer_freq, args.visitor_freq, args.noise_freq, -40.0, 10.0)
    need = 0.5 * args.seconds
    for who, r in (("issuer", heard_by_issuer), ("visitor", heard_by_visitor)):
        if r["tone_s"] < need:
            errors.append("%s heard %g Hz for %.2f s, needs %.2f s (%.1f dBFS)"
                          % (who, r["target_hz"], r["tone_s"], need, r["target_dbfs"]))

    def pub(r):
        return {k: v for k, v in r.items() if not k.startswith("_") and k != "file"}

    out = {
        "ok": not errors,
        "errors": errors,
        "issuer": {"states": issuer.states, "codec": issuer.codec, "heard": pub(heard_by_issuer),
                   "pressed_after_s": round(issuer.pressed_at - issuer.t_confirmed, 2)
                   if issuer.pressed_at and issuer.t_confirmed else None},
        "visitor": {"states": visitor.states, "codec": visitor.codec, "digits": visitor.digits,
                    "heard": pub(heard_by_visitor),
                    "called_after_press_s": round(visitor.t_incoming - issuer.pressed_at, 2)
                    if visitor.t_incoming and issuer.pressed_at else None},
        "elapsed_s": round(time.monotonic() - t_start, 2),
    }
    if errors:
        out["tmpdir"] = tmp
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    wd.cancel()
    emit(out)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
