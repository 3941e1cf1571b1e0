"""Link conditions: the setting parser, the kernel rules, the stage's schedule and its queue codec."""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import sys

import pytest

from lab.engines.docker.compose_file import compose_spec, compose_variables
from lab.engines.launch import node_environment
from lab.topology import TopologyError, build_topology
from node import nfqueue
from node.link import PRESETS, LinkCondition, UnknownLink, parse_link
from node.link_rules import QUEUE, duplicate_commands, loss_script, per_pass, queue_script, rate_commands, share_of
from node.link_stage import DelaySchedule, corrupted
from tests.helpers import ROOT


def test_presets_have_the_issue_figures():
    assert PRESETS["lan"].is_perfect and not PRESETS["lan"].holds_packets
    assert parse_link("mobile-3g") == LinkCondition(delay_ms=100, jitter_ms=30, loss_pct=2, rate_kbit=2000)
    assert parse_link("satellite-geo") == LinkCondition(delay_ms=300, jitter_ms=20, loss_pct=0.5, rate_kbit=25_000)


@pytest.mark.parametrize("setting, expected", [
    ("delay=50ms,jitter=10ms,loss=5%", LinkCondition(delay_ms=50, jitter_ms=10, loss_pct=5)),
    ("wifi,loss=5%", LinkCondition(delay_ms=5, jitter_ms=2, loss_pct=5)),
    ("delay=0.3s,rate=25mbit", LinkCondition(delay_ms=300, rate_kbit=25_000)),
    ("delay=800us", LinkCondition(delay_ms=0.8)),
    ("rate=1gbit,corrupt=0.5%", LinkCondition(rate_kbit=1_000_000, corrupt_pct=0.5)),
    ("delay=20ms,reorder=25%", LinkCondition(delay_ms=20, reorder_pct=25)),
])
def test_axes_and_presets_with_axes_parse_and_describe_themselves(setting, expected):
    assert parse_link(setting) == expected
    assert parse_link(expected.describe()) == expected  # what status shows parses back


@pytest.mark.parametrize("setting, says", [
    ("loss=120%", "percentage from 0% to 100%"),
    ("delay=-5ms", "delay must be a time"),
    ("jitter=10ms", "jitter (10ms) above delay (0ms)"),
    ("delay=5ms,jitter=6ms", "above delay"),
    ("dialup", "valid presets: lan, wifi"),
    ("wifi,latency=5ms", "unknown link axis 'latency'; valid: delay, jitter"),
    ("delay=50ms,wifi", "a preset name may only come first"),
    ("rate=3bit", "from 8kbit to 10gbit"),
    ("reorder=5%", "reorder needs a delay"),
    ("delay=11s", "at most 10s"),
    ("", "empty link setting"),
])
def test_impossible_settings_are_refused_with_what_is_valid(setting, says):
    with pytest.raises(UnknownLink, match="." if not says else None) as err:
        parse_link(setting)
    assert says in str(err.value)


def test_a_bad_link_stops_the_cli_before_anything_starts():
    proc = subprocess.run([sys.executable, "-m", "lab", "status"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "LINK_A": "delay=5ms,jitter=9ms", "ENGINE": "netns"})
    assert proc.returncode == 2 and proc.stderr.startswith("natlab: error: jitter (9ms) above delay (5ms)")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_each_router_and_the_broker_get_their_link_and_compose_can_override_it():
    topo = build_topology(link_a="mobile-3g", link_b="wifi", link_broker="delay=40ms", pairs=2)
    links = {n.name: n.link for n in topo.nodes if n.link}
    assert links == {"router-a": "mobile-3g", "router-b": "wifi", "router-a2": "mobile-3g", "router-b2": "wifi",
                     "broker": "delay=40ms"}
    assert node_environment(topo, topo.node("router-b2"))["NATLAB_LINK"] == "wifi"
    assert "NATLAB_LINK" not in node_environment(topo, topo.node("peer-a"))
    services = compose_spec(build_topology())["services"]
    assert services["router-a"]["environment"]["NATLAB_LINK"] == "${NATLAB_LINK_A:-lan}"
    assert services["broker"]["environment"]["NATLAB_LINK"] == "${NATLAB_LINK_BROKER:-lan}"
    assert compose_variables(topo)["NATLAB_LINK_A2"] == "mobile-3g"
    with pytest.raises(UnknownLink):
        build_topology(link_broker="satellite-leo")
    assert not isinstance(UnknownLink("x"), TopologyError)


def test_a_perfect_link_installs_nothing():
    lan = LinkCondition()
    assert "numgen" not in loss_script(lan, ["eth1"], ["eth0"])
    assert "NFQUEUE" not in queue_script(lan, ["eth1"], ["eth0"])
    assert all(argv[2] == "del" for argv in rate_commands(lan, ["eth1"], ["eth0"]))


def test_loss_is_in_the_kernel_before_everything_and_holds_in_both_directions():
    script = loss_script(parse_link("loss=2.5%"), ["eth1"], ["eth0"])
    assert 'iifname { "eth1", "eth0" } numgen random mod 1000000 < 25000 drop' in script
    assert 'oifname { "eth0" } numgen random mod 1000000 < 25000 drop' in script
    assert "priority -350" in script and "table ip natlab_link" in script  # never the NAT's table


def test_packets_that_must_wait_go_to_the_stage_on_their_way_in():
    script = queue_script(parse_link("delay=50ms"), ["eth1"], ["eth0", "eth1x"])
    assert f"-A natlab-link -i eth1 -j NFQUEUE --queue-num {QUEUE}" in script
    assert "-A natlab-link-out -o eth0x" not in script and "-A natlab-link-out -o eth1x -j NFQUEUE" in script
    assert script.startswith("*raw\n") and script.rstrip().endswith("COMMIT")


def test_rate_is_a_token_bucket_on_every_egress():
    commands = rate_commands(parse_link("rate=2mbit"), ["eth1"], ["eth0"])
    assert [c[4] for c in commands] == ["eth0", "eth1"]
    assert commands[0][6:9] == ["tbf", "rate", "2000kbit"] and int(commands[0][10]) >= 2 * 1514


def test_the_schedule_holds_each_packet_its_delay_within_the_jitter():
    schedule = DelaySchedule(parse_link("delay=100ms,jitter=20ms"), random.Random(1))
    for i in range(1000):
        schedule.admit(0.0, i)
    assert schedule.due(0.079) == []
    released = schedule.due(0.121)
    assert len(released) == 1000 and len(schedule) == 0
    assert [i for i, _ in released] != sorted(i for i, _ in released)  # jitter reorders, as a real link


def test_reorder_lets_a_share_through_at_once():
    schedule = DelaySchedule(parse_link("delay=50ms,reorder=25%"), random.Random(2))
    for i in range(2000):
        schedule.admit(0.0, i)
    assert 400 < len(schedule.due(0.0)) < 600


def test_corruption_flips_one_bit_past_the_ip_header():
    packet = bytes([0x45]) + bytes(19) + b"payload!"
    bad = corrupted(packet, random.Random(3))
    diff = [i for i, (x, y) in enumerate(zip(packet, bad)) if x != y]
    assert len(diff) == 1 and diff[0] >= 20 and bin(packet[diff[0]] ^ bad[diff[0]]).count("1") == 1


def test_the_queue_codec_reads_the_kernels_packets_and_writes_verdicts():
    header = nfqueue.attribute(nfqueue.ATTR_PACKET_HDR, struct.pack(">IHB", 4242, 0x0800, 0) + b"\0")
    body = nfqueue.NFGEN.pack(socket.AF_INET, 0, socket.htons(QUEUE)) + header + nfqueue.attribute(
        nfqueue.ATTR_PAYLOAD, b"\x45abc")
    kind = (nfqueue.NFNL_SUBSYS_QUEUE << 8) | nfqueue.MSG_PACKET
    one = nfqueue.NLMSG.pack(nfqueue.NLMSG.size + len(body), kind, 0, 0, 0) + body
    assert nfqueue.packets(one + one) == [nfqueue.Queued(4242, b"\x45abc")] * 2
    verdict = nfqueue.verdict_message(QUEUE, 4242, nfqueue.ACCEPT)
    length, kind, *_ = nfqueue.NLMSG.unpack_from(verdict)
    assert length == len(verdict) and kind == (nfqueue.NFNL_SUBSYS_QUEUE << 8) | nfqueue.MSG_VERDICT
    attrs = nfqueue.attributes(verdict[nfqueue.NLMSG.size + nfqueue.NFGEN.size:])
    assert struct.unpack(">II", attrs[nfqueue.ATTR_VERDICT_HDR]) == (nfqueue.ACCEPT, 4242)


def test_duplication_is_a_random_mirror_on_every_ingress_whose_copies_add_up_to_the_share():
    condition = parse_link("duplicate=2%")
    assert not condition.holds_packets  # all in the kernel: the stage is not in the path
    commands = duplicate_commands(condition, ["eth1"], ["eth0"])
    filters = [c for c in commands if c[1] == "filter"]
    assert [c[4] for c in filters] == ["eth1", "eth0"] and filters[0][-4:] == ["ingress", "mirror", "dev", "eth1"]
    threshold = int(filters[0][filters[0].index("bytecode") + 1].split(",")[3].split()[3])
    assert threshold < 2 ** 31 and share_of(threshold) == pytest.approx(2, abs=0.001)
    x = per_pass(0.02)
    assert x + x * x + x ** 3 == pytest.approx(0.02) and x < 0.02
    assert all(c[2] == "del" for c in duplicate_commands(LinkCondition(), ["eth1"], ["eth0"]))
