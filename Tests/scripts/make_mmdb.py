#!/usr/bin/env python3
"""Builds a MaxMind-format country database with mmdb-writer and reads it back with MaxMind's
own reader (maxminddb), for the host's reader tests (Tests/StreamHostTests/MaxMindDatabaseTests.swift).

Usage: make_mmdb.py OUT [--ipv4] NETWORK=CC ... [--probe ADDRESS ...]

Each NETWORK=CC becomes a GeoIP2-Country-shaped record ({"country": {"iso_code", "geoname_id",
"names"}, "registered_country", "traits"} with strings, maps, uint32, double, bool and array
values). With --probe, prints one JSON object: address -> the country maxminddb finds (or null).
"""
import json
import sys

import maxminddb
from mmdb_writer import MMDBWriter, MmdbF64, MmdbU32
from netaddr import IPSet


def main():
    args = sys.argv[1:]
    out = args.pop(0)
    ipv4 = "--ipv4" in args
    if ipv4:
        args.remove("--ipv4")
    probes = []
    if "--probe" in args:
        index = args.index("--probe")
        probes = args[index + 1:]
        args = args[:index]
    writer = MMDBWriter(ip_version=4 if ipv4 else 6, database_type="Veza-Test-Country", languages=["en"],
                        description={"en": "test networks"}, ipv4_compatible=not ipv4)
    for number, entry in enumerate(args):
        network, code = entry.split("=")
        record = {
            "country": {"iso_code": code, "geoname_id": MmdbU32(1000 + number), "names": {"en": f"Country {code}", "de": f"Land {code}"}},
            "registered_country": {"iso_code": code},
            "traits": {"is_anycast": number % 2 == 0, "accuracy": MmdbF64(0.5 + number), "tags": ["a", "b", code]},
        }
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(out)
    if probes:
        reader = maxminddb.open_database(out)
        found = {}
        for address in probes:
            try:
                record = reader.get(address)
            except ValueError:
                record = None
            found[address] = (record or {}).get("country", {}).get("iso_code")
        print(json.dumps(found))


if __name__ == "__main__":
    main()
