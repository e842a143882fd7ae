#!/usr/bin/env python3
"""Fails when a module's documentation leaves a public symbol uncurated.

Usage: check-docs.py ARCHIVE-DIR...   (each a .doccarchive made by `swift package generate-documentation`)

DocC puts every public top-level symbol that no Topics section of the catalog names into
generated sections of the module page ("Structures", "Classes", …, marked "generated": true in
the render JSON). This lists them per module and exits 1 if there is any. Standard library only.
"""
import glob
import json
import os
import sys


def uncurated(archive):
    found = []
    for root in glob.glob(os.path.join(archive, "data", "documentation", "*.json")):
        page = json.load(open(root))
        for section in page.get("topicSections", []):
            if section.get("generated"):
                found += [(section.get("title", "?"), identifier.rsplit("/", 1)[-1]) for identifier in section.get("identifiers", [])]
    return found


def main():
    archives = sys.argv[1:]
    if not archives:
        print(__doc__)
        return 2
    failed = False
    for archive in archives:
        name = os.path.basename(archive.rstrip("/")).replace(".doccarchive", "")
        if not os.path.isdir(os.path.join(archive, "data")):
            print(f"{name}: no documentation data in {archive}")
            failed = True
            continue
        missing = uncurated(archive)
        if missing:
            failed = True
            print(f"{name}: {len(missing)} public symbol(s) not curated under a topic:")
            for title, symbol in missing:
                print(f"  {symbol} (would be listed under '{title}')")
        else:
            print(f"{name}: every public symbol is curated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
