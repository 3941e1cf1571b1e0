"""The run report on runs the tests build: flows, NAT table, ladder, report.md, merged capture, CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgReader, RawPcapNgReader

from lab.analysis.flows import flows
from lab.analysis.journeys import Journey, by_vantage, journeys
from lab.analysis.ladder import build_ladder
from lab.analysis.nat_table import nat_table
from lab.analysis.packet_roles import PacketRole, role_of
from lab.analysis.packets import Packet
from lab.analysis.run import RunView, read_run
from lab.analysis.verdict import analyse_run
from lab.report.ladder_drawer import LadderDrawer
from lab.report.ladder_png import _spread, draw_ladder
from lab.report.markdown import mermaid
from lab.report.merged_pcapng import merge_captures
from lab.report.run_report import RunReport
from tests.helpers import ROOT
from tests.helpers.pcap_factory import MESSAGES, RUN_ID, BuiltRun, Faults, build_run, write_record
from tests.helpers.pcaps import frames_per_vantage, tshark_interface_names
from tests.helpers.signed import register
from wire.protocol import Ack, Bye, Data, Endpoint, Probe, encode

FRAME_OVERHEAD = 14 + 20 + 8  # Ethernet, IPv4, UDP headers in the built frames


def built(run_dir: Path, faults: Faults = Faults()) -> tuple[BuiltRun, RunView]:
    run = build_run(run_dir, faults)
    write_record(run_dir, run.topology)
    return run, read_run(run_dir).view


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, BuiltRun, RunView]:
    run_dir = tmp_path_factory.mktemp("good")
    return (run_dir, *built(run_dir))


@pytest.fixture(scope="module")
def reported(good) -> subprocess.CompletedProcess:
    """`python -m lab report` once on the good run; the tests below read what it wrote."""
    return lab_cli("report", str(good[0]))


def lab_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, capture_output=True, text=True)


# Roles and journeys


def test_roles_come_from_the_lab_protocol():
    def packet(payload: bytes, proto: int = 17) -> Packet:
        from wire.protocol import try_decode

        return Packet("v", 0.0, "", "", "198.51.100.1", "198.51.100.2", proto, 1, 2, payload, try_decode(payload))

    assert role_of(packet(encode(register("r", "a", "t", Endpoint("10.0.1.10", 1))))) is PacketRole.REGISTRATION
    assert role_of(packet(encode(Probe("r", "a", 1, False)))) is PacketRole.PROBE
    assert role_of(packet(encode(Data("r", "a", 1, "x")))) is PacketRole.DATA
    assert role_of(packet(encode(Ack("r", "a", 1)))) is role_of(packet(encode(Bye("r", "a", 2)))) is PacketRole.DATA
    # Same size as a probe but not one of ours: not guessed.
    assert role_of(packet(b"x" * len(encode(Probe("r", "a", 1, False))))) is PacketRole.OTHER
    assert role_of(packet(b"", proto=1)) is PacketRole.OTHER
    # STUN is decoded as STUN; a datagram that merely starts like STUN is not.
    from wire import stun

    binding = stun.encode(stun.Message(stun.Method.BINDING, stun.Class.REQUEST))
    assert role_of(packet(binding)) is PacketRole.STUN
    assert role_of(packet(b"\x00\x01" + b"\xff" * 30)) is PacketRole.OTHER


def test_a_resent_datagram_is_a_journey_of_its_own():
    payload = encode(register("r", "a", "t", Endpoint("10.0.1.10", 41000)))

    def seen(vantage: str, t: float) -> Packet:
        return Packet(vantage, t, "", "", "10.0.1.10", "198.51.100.10", 17, 41000, 3478, payload)

    trips = journeys({"router-a-lan": [seen("router-a-lan", 0.0), seen("router-a-lan", 0.5)],
                      "router-a-wan": [seen("router-a-wan", 0.0001), seen("router-a-wan", 0.5001)]})
    assert [[p.time for p in j.sightings] for j in trips] == [[0.0, 0.0001], [0.5, 0.5001]]


def test_a_flood_of_one_payload_is_joined_datagram_by_datagram():
    # 3000 identical datagrams 0.1 ms apart, each seen on both sides of the router 50 us later: a
    # program that repeats itself (a keepalive storm) must neither confuse nor stall the join
    caps = {v: [Packet(v, i * 1e-4 + d, "", "", "10.0.1.10", "198.51.100.102", 17, 5000, 5000, b"hello from a")
                for i in range(3000)] for v, d in (("router-a-lan", 0.0), ("router-a-wan", 5e-5))}
    trips = journeys(caps)
    assert len(trips) == 3000 and all(len(j.sightings) == 2 for j in trips)
    assert all(abs(j.at("router-a-wan").time - j.at("router-a-lan").time - 5e-5) < 1e-9 for j in trips[::500])


def test_journeys_know_their_vantage_points():
    payload = encode(Probe("r", "a", 1, False))
    lan, wan = (Packet(v, t, "", "", "10.0.1.10", "198.51.100.2", 17, 1, 2, payload)
                for v, t in (("router-a-lan", 0.0), ("router-a-wan", 0.0001)))
    other = Packet("router-b-wan", 0.5, "", "", "198.51.100.1", "198.51.100.2", 17, 1, 2, b"other")
    trips = journeys({"router-a-lan": [lan], "router-a-wan": [wan], "router-b-wan": [other]})
    assert [(j.at("router-a-lan"), j.at("router-a-wan")) for j in trips] == [(lan, wan), (None, None)]
    assert by_vantage(trips) == {"router-a-lan": [trips[0]], "router-a-wan": [trips[0]], "router-b-wan": [trips[1]]}
    assert Journey([lan, wan]).at("router-a-wan") is wan  # made whole, it knows them too


# Flows


def test_flows_at_the_broker_are_the_rendezvous(good):
    _, run, view = good
    pub = run.public
    broker = f"{view.broker_ip}:{view.topology.broker_port}"
    rows = [(f.src, f.dst, f.role, f.packets) for f in flows(view) if f.vantage == "broker-wan"]
    assert rows == [
        (str(pub["a"]), broker, PacketRole.REGISTRATION, 1),
        (broker, str(pub["a"]), PacketRole.REGISTRATION, 1),
        (str(pub["b"]), broker, PacketRole.REGISTRATION, 1),
        (broker, str(pub["b"]), PacketRole.INTRODUCTION, 1),
        (broker, str(pub["a"]), PacketRole.INTRODUCTION, 1),
    ]


def test_flows_count_packets_and_bytes_per_role(good):
    _, run, view = good
    at_b = {(f.src, f.dst, f.role): f for f in flows(view) if f.vantage == "router-b-wan"}
    probes = at_b[(str(run.public["a"]), str(run.public["b"]), PacketRole.PROBE)]
    sent = [s.msg for s in run.sent if isinstance(s.msg, Probe) and s.msg.sender == "a"]
    assert probes.packets == len(sent) == 5
    assert probes.bytes == sum(FRAME_OVERHEAD + len(encode(m)) for m in sent)
    assert probes.first < probes.last
    data = at_b[(str(run.public["a"]), str(run.public["b"]), PacketRole.DATA)]
    assert data.packets == MESSAGES
    assert sum(f.packets for f in flows(view)) == sum(len(p) for p in view.caps.values())


# NAT table


def test_nat_table_holds_the_translations_the_routers_applied(good):
    _, run, view = good
    priv, pub = run.private, run.public
    broker = f"{view.broker_ip}:{view.topology.broker_port}"
    table = nat_table(view, journeys(view.caps))
    rows = {(t.router, t.private, t.public, t.remote): (t.outbound, t.inbound) for t in table}
    assert rows == {
        ("router-a", str(priv["a"]), str(pub["a"]), broker): (1, 2),  # register; waiting + intro
        ("router-a", str(priv["a"]), str(pub["a"]), str(pub["b"])): (5 + MESSAGES, 1 + MESSAGES),
        ("router-b", str(priv["b"]), str(pub["b"]), broker): (1, 1),  # register; intro
        # a's first 4 probes stopped at router-b: only the ack probe and the data came in.
        ("router-b", str(priv["b"]), str(pub["b"]), str(pub["a"])): (1 + MESSAGES, 1 + MESSAGES),
    }
    assert all(t.translated and t.reported for t in table)


def test_nat_table_shows_a_forward_without_translation(tmp_path):
    run, view = built(tmp_path, Faults(firewall_off=True))
    untranslated = [t for t in nat_table(view, journeys(view.caps)) if not t.translated]
    private = f"{run.topology.pair('b').private_ip}:40000"
    assert [(t.router, t.private, t.public, t.remote, t.inbound) for t in untranslated] == [
        ("router-b", private, private, f"{run.topology.outsider.address}:50000", 2)
    ]


def test_nat_table_shows_a_bypass_that_went_out(tmp_path):
    run, view = built(tmp_path, Faults(bypass=True))
    pair = run.topology.pair("a")
    rows = [t for t in nat_table(view, journeys(view.caps)) if t.private.endswith(":39000")]
    assert [(t.router, t.public, t.outbound) for t in rows] == [("router-a", f"{pair.public_ip}:39000", 3)]


# Ladder


@pytest.mark.parametrize("faults", [Faults(), Faults(firewall_off=True), Faults(bypass=True), Faults(via_broker=True)],
                         ids=["good", "firewall-off", "bypass", "via-broker"])
def test_ladder_has_one_arrow_per_datagram_ending_where_it_ended(tmp_path, faults):
    run, view = built(tmp_path, faults)
    ladder = build_ladder(view, journeys(view.caps))
    assert [(a.src, a.dst, a.dropped, a.seq) for a in ladder.arrows] == [
        (s.src, s.dst, s.dropped, getattr(s.msg, "seq", None)) for s in run.sent
    ]


def test_ladder_lanes_and_introduction(good):
    _, run, view = good
    ladder = build_ladder(view, journeys(view.caps))
    topo = run.topology
    assert [lane.node for lane in ladder.lanes] == ["peer-a", "router-a", "broker", "relay", "outsider", "router-b", "peer-b"]
    assert ladder.lanes[1].addresses == tuple(str(i.address) for i in topo.node("router-a").interfaces)
    last_intro = max(p.time for p in view.broker if p.msg is not None and p.msg.TYPE == "intro")
    assert ladder.introduction == pytest.approx(last_intro - view.t0)
    dropped = [a for a in ladder.arrows if a.dropped and a.role is PacketRole.PROBE]
    assert len(dropped) == 4 and {a.dst for a in dropped} == {"router-b"}
    assert all(a.sent > ladder.introduction for a in dropped)


def test_mermaid_tells_the_story_in_order(good):
    _, _, view = good
    ladder = build_ladder(view, journeys(view.caps))
    text = mermaid(ladder)
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[0] == "sequenceDiagram"
    assert "participant peer_a as peer-a<br>10.0.1.10" in lines
    assert "participant broker as broker<br>198.51.100.10:3478" in lines
    arrows = [ln for ln in lines if "->>" in ln or "-x" in ln]
    assert len(arrows) == len(ladder.steps())
    dropped_probes = next(i for i, ln in enumerate(lines) if ln.startswith("peer_a-xrouter_b:"))
    assert "probe ×4, seq 0–3, dropped" in lines[dropped_probes]
    note = next(i for i, ln in enumerate(lines) if ln.startswith("Note over peer_a,peer_b: introduction"))
    last_intro = max(i for i, ln in enumerate(lines) if "intro:" in ln)
    assert last_intro < note < dropped_probes
    assert lines.count("end") == sum(ln.startswith("rect ") for ln in lines)
    assert "#" not in text and ";" not in text  # Mermaid would read them as a comment / a line end


def test_label_spreading_keeps_labels_apart_and_inside():
    placed = _spread([0.0, 0.0, 0.01, 5.0, 9.99, 10.0], gap=1.0, low=0.0, high=10.0)
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(placed, placed[1:]))
    assert placed[0] >= 0.0 and placed[-1] <= 10.0


def test_a_run_without_lab_datagrams_still_draws(tmp_path):
    _, view = built(tmp_path)
    empty = RunView({}, view.topology)
    ladder = build_ladder(empty, journeys(empty.caps))
    assert ladder.arrows == () and ladder.introduction is None
    assert draw_ladder(ladder, "empty", tmp_path / "ladder.png").read_bytes().startswith(b"\x89PNG")


# The report files, through the CLI


def test_report_command_writes_the_three_files(good, reported):
    run_dir = good[0]
    assert reported.returncode == 0, reported.stderr
    for name in ("report.md", "ladder.png", "merged.pcapng"):
        assert str(run_dir / name) in reported.stdout
    assert (run_dir / "ladder.png").read_bytes().startswith(b"\x89PNG")


def test_report_md_holds_verdict_ladder_nat_and_flows(good, reported):
    run_dir, run, view = good
    text = (run_dir / "report.md").read_text()
    assert text.startswith(f"# Run {RUN_ID}\n")
    assert "**all checks passed**" in text
    for check in ("| 1 | PASS |", "| 2 | PASS |", "| 3 | PASS |", "| 4 | PASS |", "| 5a | PASS |", "| 5b | PASS |"):
        assert check in text
    assert "```mermaid\nsequenceDiagram\n" in text and "![the ladder to scale](ladder.png)" in text
    for t in nat_table(view, journeys(view.caps)):
        assert f"| {t.router} | {t.private} | {t.public} | {t.remote} |" in text
    assert text.count("| broker-wan | udp |") == 5


def test_merged_capture_holds_every_packet_on_its_vantage_point(good, reported):
    run_dir = good[0]
    parts = frames_per_vantage(run_dir)
    with PcapNgReader(str(run_dir / "merged.pcapng")) as reader:
        merged = list(reader)
    assert len(merged) == sum(parts.values())
    assert {name: sum(p.sniffed_on == name for p in merged) for name in parts} == parts
    times = [p.time for p in merged]
    assert times == sorted(times)


def test_merged_capture_orders_on_nanoseconds_and_keeps_them(tmp_path):
    """Frames a few nanoseconds apart on different vantage points interleave as they were seen."""
    from scapy.utils import EDecimal, PcapWriter

    seen = {"router-a-lan": ["0.000000001", "0.000000004"], "router-a-wan": ["0.000000002", "0.000000003"]}
    for vantage, times in seen.items():
        with PcapWriter(str(tmp_path / f"{vantage}.pcap"), linktype=1, nano=True) as writer:
            for t in times:
                frame = Ether() / IP() / UDP() / vantage.encode()
                frame.time = EDecimal(1_700_000_000) + EDecimal(t)
                writer.write(frame)
    with RawPcapNgReader(str(merge_captures(tmp_path))) as reader:
        merged = [(meta.ifname.decode(), (meta.tshigh << 32 | meta.tslow) % 10**9, data) for data, meta in reader]
    assert [(name, ns) for name, ns, _ in merged] == [
        ("router-a-lan", 1), ("router-a-wan", 2), ("router-a-wan", 3), ("router-a-lan", 4)
    ]
    assert all(data.endswith(name.encode()) for name, _, data in merged)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_reads_the_merged_capture(good, reported):
    run_dir = good[0]
    parts = frames_per_vantage(run_dir)
    names = tshark_interface_names(run_dir / "merged.pcapng")
    assert {name: names.count(name) for name in parts} == parts and len(names) == sum(parts.values())


# The ladder's own process, and a report begun before its verdict


def test_the_drawer_draws_what_this_process_draws(good, tmp_path):
    _, _, view = good
    ladder = build_ladder(view, journeys(view.caps))
    with LadderDrawer() as drawer:
        drawer.draw(ladder, "built", tmp_path / "there.png")
        assert drawer.wait() == tmp_path / "there.png"
    here = draw_ladder(ladder, "built", tmp_path / "here.png")
    assert (tmp_path / "there.png").read_bytes() == here.read_bytes()


def test_the_drawer_hands_back_its_failure(good, tmp_path):
    _, _, view = good
    with LadderDrawer() as drawer:
        drawer.draw(build_ladder(view, journeys(view.caps)), "built", tmp_path / "missing" / "ladder.png")
        with pytest.raises(FileNotFoundError):
            drawer.wait()
    with LadderDrawer():
        pass  # never given a ladder: ended at once


def test_a_drawer_abandoned_by_a_failure_is_ended(good, tmp_path):
    import signal

    _, _, view = good
    with pytest.raises(RuntimeError, match="the caller failed"), LadderDrawer() as drawer:
        drawer.draw(build_ladder(view, journeys(view.caps)), "built", tmp_path / "ladder.png")
        raise RuntimeError("the caller failed")
    assert drawer._proc.returncode == -signal.SIGKILL  # not left to draw for nobody


def test_a_report_that_cannot_begin_fails_when_written(good, monkeypatch):
    import lab.report.run_report

    def broken(view, trips):
        raise RuntimeError("no ladder")

    monkeypatch.setattr(lab.report.run_report, "build_ladder", broken)
    report = RunReport(read_run(good[0]))  # the verdict is made after this: it must not raise
    with pytest.raises(RuntimeError, match="no ladder"):
        report.write(analyse_run(good[0]))


def test_show_prints_the_flows_and_nat_tables(good):
    run_dir, run, _ = good
    proc = lab_cli("show", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert "flows (" in proc.stdout and "NAT translations" in proc.stdout
    assert f"{run.private['b']}  {run.public['b']}" in proc.stdout


def test_report_on_a_missing_run_says_so(tmp_path):
    proc = lab_cli("report", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "no run at" in proc.stderr


def built_scenario(monkeypatch, captures: Path, faults: Faults) -> None:
    """The CLI's punch-test gets a built run in place of the lab's scenario."""
    import lab.cli
    import lab.experiment.punch_test

    def scenario(engine, config, captures_root, progress):
        run_dir = captures_root / RUN_ID
        write_record(run_dir, build_run(run_dir, faults).topology)
        return run_dir

    monkeypatch.setenv("NATLAB_CAPTURES", str(captures))
    # An engine that is only its topology: nothing here reaches a lab.
    monkeypatch.setattr(lab.cli, "make_engine", lambda name, topology: SimpleNamespace(topology=topology))
    monkeypatch.setattr(lab.experiment.punch_test, "run_punch_test", scenario)


@pytest.mark.parametrize("faults, code", [(Faults(), 0), (Faults(firewall_off=True), 1)], ids=["passes", "fails"])
def test_punch_test_writes_the_report_and_keeps_its_exit_code(tmp_path, monkeypatch, capsys, faults, code):
    import lab.cli

    built_scenario(monkeypatch, tmp_path, faults)
    assert lab.cli.main(["punch-test", "--messages", str(MESSAGES)]) == code
    out = capsys.readouterr().out
    for name in ("report.md", "ladder.png", "merged.pcapng"):
        assert (tmp_path / RUN_ID / name).exists()
        assert str(tmp_path / RUN_ID / name) in out


def test_a_failing_report_leaves_the_punch_test_verdict_alone(tmp_path, monkeypatch, capsys):
    import lab.cli
    import lab.report.run_report

    def broken(report, verdict):
        raise RuntimeError("no ink")

    built_scenario(monkeypatch, tmp_path, Faults())
    monkeypatch.setattr(lab.report.run_report.RunReport, "write", broken)
    assert lab.cli.main(["punch-test", "--messages", str(MESSAGES)]) == 0
    captured = capsys.readouterr()
    assert "all checks passed" in captured.out
    assert "the report could not be written" in captured.err and f"make report RUN={RUN_ID}" in captured.err
