"""The hand-made pcap reader and pcapng writer, checked against scapy's and tshark's readers."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import EDecimal, PcapWriter, RawPcapNgReader, RawPcapReader

from lab.analysis.packets import load_run
from lab.analysis.pcap_io import Frame, PcapError, read_pcap, write_pcapng
from wire.protocol import Probe, encode

T0 = 1_700_000_000


def frames(count: int = 5) -> list:
    """UDP datagrams of odd sizes (pcapng pads each to 32 bits), with an ARP frame among them."""
    out = [Ether() / IP(src="10.0.1.10", dst="198.51.100.10") / UDP(sport=41000, dport=3478) / (b"x" * n)
           for n in range(count)]
    out.insert(2, Ether() / ARP())
    return out


def write_with_scapy(path: Path, packets: list, nano: bool) -> Path:
    with PcapWriter(str(path), linktype=1, nano=nano) as writer:
        for i, p in enumerate(packets):
            p.time = EDecimal(T0) + EDecimal(i) / 4 + EDecimal("0.000000123" if nano else "0.000123")  # exact
            writer.write(p)
    return path


@pytest.mark.parametrize("nano", [False, True], ids=["microseconds", "nanoseconds"])
def test_read_pcap_reads_what_scapy_reads(tmp_path, nano):
    path = write_with_scapy(tmp_path / "v.pcap", frames(), nano)
    capture = read_pcap(path)
    with RawPcapReader(str(path)) as reader:
        scale = 1e-9 if reader.nano else 1e-6
        expected = [(meta.sec + scale * meta.usec, data, meta.wirelen) for data, meta in reader]
        snaplen = reader.snaplen
    assert [(f.time, f.data, f.wire_len) for f in capture.frames] == expected
    assert (capture.linktype, capture.snaplen) == (1, snaplen)
    ticks = 123 if nano else 123_000
    assert capture.frames[1].ns == (T0 * 10**9) + 250_000_000 + ticks


def test_read_pcap_big_endian_and_refuse_it_cut_short(tmp_path):
    header = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    record = lambda sec, usec, data: struct.pack(">IIII", sec, usec, len(data), len(data) + 10) + data
    path = tmp_path / "be.pcap"
    whole = header + record(T0, 7, b"abc") + record(T0 + 1, 8, b"defg")
    path.write_bytes(whole)
    capture = read_pcap(path)
    assert [(f.ns, f.data, f.wire_len) for f in capture.frames] == [
        (T0 * 10**9 + 7000, b"abc", 13), ((T0 + 1) * 10**9 + 8000, b"defg", 14)
    ]
    # cut short, in a record's bytes or in its header: refused, not read in part
    for cut in (whole + record(T0 + 2, 9, b"hij")[:-1], whole + record(T0 + 2, 9, b"hij")[:10]):
        path.write_bytes(cut)
        with pytest.raises(PcapError, match="cut short"):
            read_pcap(path)


def test_read_pcap_refuses_what_is_not_a_pcap(tmp_path):
    (tmp_path / "x.pcap").write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))  # a pcapng
    with pytest.raises(PcapError):
        read_pcap(tmp_path / "x.pcap")


def pcapng_of(tmp_path: Path) -> tuple[Path, list[tuple[str, Frame]]]:
    """Two interfaces, frames of odd lengths, timestamps a nanosecond apart, one frame cut by its capture."""
    sent = [
        ("router-a-lan", Frame(0.0, T0 * 10**9 + 1, b"\x01" * 61, 61)),
        ("router-a-wan", Frame(0.0, T0 * 10**9 + 2, b"\x02" * 64, 64)),
        ("router-a-lan", Frame(0.0, T0 * 10**9 + 3, b"\x03" * 42, 1500)),
    ]
    names = ["router-a-lan", "router-a-wan"]
    out = write_pcapng(tmp_path / "m.pcapng", [(n, 1, 262144) for n in names],
                       [(names.index(name), frame) for name, frame in sent])
    return out, sent


def test_pcapng_round_trips_through_scapy(tmp_path):
    path, sent = pcapng_of(tmp_path)
    with RawPcapNgReader(str(path)) as reader:
        read = [(meta.ifname.decode(), (meta.tshigh << 32 | meta.tslow) * 10**9 // meta.tsresol, data, meta.wirelen)
                for data, meta in reader]
    assert read == [(name, f.ns, f.data, f.wire_len) for name, f in sent]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_reads_the_pcapng_to_the_nanosecond(tmp_path):
    path, sent = pcapng_of(tmp_path)
    fields = ["frame.interface_name", "frame.time_epoch", "frame.len", "frame.cap_len"]
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", *(a for f in fields for a in ("-e", f))],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert rows == [[name, f"{T0}.{f.ns % 10**9:09d}", str(f.wire_len), str(len(f.data))] for name, f in sent]


def test_sightings_of_one_datagram_share_its_decoded_message(tmp_path):
    payload = encode(Probe("r", "a", 1, False))
    for vantage in ("router-a-lan", "router-a-wan"):
        write_with_scapy(tmp_path / f"{vantage}.pcap", [Ether() / IP() / UDP() / payload], nano=True)
    caps = load_run(tmp_path)
    lan, wan = caps["router-a-lan"][0], caps["router-a-wan"][0]
    assert lan.msg == Probe("r", "a", 1, False) and lan.msg is wan.msg
