#!/usr/bin/env python3
"""Turns the JSON written by test_compat_matrix.py into the README's compatibility table.

    python3 tests/integration/compat_table.py RESULTS.json              # print the table
    python3 tests/integration/compat_table.py RESULTS.json --readme README.md
        # replace the text between <!-- compat-table:begin --> and <!-- compat-table:end -->

A cell is what the test measured through Moat: "yes" (passed), "no" (failed; "no, bare
broker too" when it also failed against Mosquitto's own TLS listener), "n/a" (the client
library or protocol version cannot express it; the reason is a footnote)."""

import json
import sys

FEATURES = ["QoS 0", "QoS 1", "QoS 2", "retained", "will", "keepalive 0", "persistent session",
            "topic alias", "shared subscription", "# over a denied branch"]
CLIENTS = ["paho-mqtt", "libmosquitto", "MQTT.js"]
VERSIONS = ["3.1", "3.1.1", "5.0"]
BEGIN, END = "<!-- compat-table:begin -->", "<!-- compat-table:end -->"


def table(data):
    res = {(r["target"], r["client"], r["version"], r["feature"]): r["result"]
           for r in data["results"]}
    notes = []
    lines = ["| client | MQTT | " + " | ".join(FEATURES) + " |",
             "|---|---|" + "---|" * len(FEATURES)]
    for client in CLIENTS:
        for version in VERSIONS:
            cells = []
            for feature in FEATURES:
                moat = res.get(("moat", client, version, feature))
                bare = res.get(("mosquitto", client, version, feature))
                if moat is None:
                    cells.append("not run")
                elif moat == "pass":
                    cells.append("yes")
                elif moat.startswith("n/a"):
                    why = moat.split(":", 1)[1].strip() if ":" in moat else ""
                    if why not in notes:
                        notes.append(why)
                    cells.append("n/a[%d]" % (notes.index(why) + 1))
                else:
                    cells.append("no, bare broker too" if bare == "fail" else "**no**")
            lines.append("| %s | %s | %s |" % (client, version, " | ".join(cells)))
    moat = [r for (t, *_), r in res.items() if t == "moat"]
    passed = sum(1 for r in moat if r == "pass")
    na = sum(1 for r in moat if r.startswith("n/a"))
    lines.append("")
    lines.append("Measured by `tests/integration/test_compat_matrix.py` through Moat over TLS "
                 "in front of %s: %d cells pass, %d fail, %d not applicable; every cell also "
                 "runs against Mosquitto's own TLS listener." % (
                     data.get("mosquitto", "Mosquitto"), passed, len(moat) - passed - na, na))
    for i, why in enumerate(notes):
        lines += ["", "[%d] %s." % (i + 1, why)]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 1
    with open(argv[1]) as f:
        text = table(json.load(f))
    if len(argv) == 4 and argv[2] == "--readme":
        with open(argv[3]) as f:
            readme = f.read()
        start, end = readme.find(BEGIN), readme.find(END)
        if start < 0 or end < start:
            print("%s: markers %s / %s not found" % (argv[3], BEGIN, END), file=sys.stderr)
            return 1
        readme = readme[:start + len(BEGIN)] + "\n" + text + readme[end:]
        with open(argv[3], "w") as f:
            f.write(readme)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
