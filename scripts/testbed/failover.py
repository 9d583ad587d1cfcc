#!/usr/bin/python3
"""Numbers for the testbed's uplink failover check (scripts/testbed.sh, check_failover).

  failover.py bond PORT < hnvctl-show-ports.json
      prints "ACTIVE_MEMBER FAILOVERS CARRIER_CHANGES" of bonded port PORT
      (from `hnvctl --json show ports`), or "- - -" when there is none.

  failover.py ping LOG INTERVAL T1 [T2 ...]
      LOG is the output of `ping -D -i INTERVAL`; T1, T2, ... are epoch times
      of events (a member's link taken down, brought back). Prints, per event,
      "LOST RECOVERY_S":
        LOST        echo requests sent from T-INTERVAL until the next event
                    (or the end) that got no reply;
        RECOVERY_S  seconds from the event to the first reply after the run
                    of lost requests that starts within ATTRIBUTE_S of it
                    ("0.000" when there is none: a later loss is not the
                    event's).
      A lost request's send time is interpolated between the replies around
      it (see send_times). Then a last line
      "SENT RECEIVED" over the whole log.

  failover.py log SWITCH_LOG T1 [T2 ...]
      prints, per event, the seconds from it to the first failover the switch
      logged after it (and before the next event), or "-".
"""
import datetime
import json
import re
import sys

# A run of lost requests starting this long after an event is not counted as its gap.
ATTRIBUTE_S = 0.5
REPLY = re.compile(r"^\[(\d+\.\d+)\].*icmp_seq=(\d+)")
SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")


def find_port(tree, port):
    """The object with name == port and a bond's columns, anywhere in tree."""
    if isinstance(tree, dict):
        if tree.get("name") == port and "active_member" in tree:
            return tree
        tree = list(tree.values())
    if isinstance(tree, list):
        for v in tree:
            found = find_port(v, port)
            if found is not None:
                return found
    return None


def bond(port):
    row = find_port(json.load(sys.stdin), port)
    if row is None:
        print("- - -")
    else:
        print(row["active_member"].replace(" ", ",") or "-", row.get("failovers", "-"), row.get("carrier_changes", "-"))


def parse(log):
    replies = {}
    sent = received = None
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = REPLY.match(line)
            if m:
                replies.setdefault(int(m.group(2)), float(m.group(1)))
                continue
            m = SUMMARY.search(line)
            if m:
                sent, received = int(m.group(1)), int(m.group(2))
    return replies, sent, received


def send_times(replies, last_seq, interval):
    """seq -> estimated send time (plus one RTT) for seqs 1..last_seq: a reply's
    own time; a lost request's interpolated between the replies around it
    (ping's real interval drifts from INTERVAL on a loaded machine), or
    extrapolated by INTERVAL beyond the first or last reply."""
    seqs = sorted(replies)
    out = {}
    for s in range(1, last_seq + 1):
        if s in replies:
            out[s] = replies[s]
            continue
        before = [q for q in seqs if q < s]
        after = [q for q in seqs if q > s]
        if before and after:
            a, b = before[-1], after[0]
            out[s] = replies[a] + (s - a) * (replies[b] - replies[a]) / (b - a)
        elif before:
            out[s] = replies[before[-1]] + (s - before[-1]) * interval
        else:
            out[s] = replies[after[0]] - (after[0] - s) * interval
    return out


def events(replies, sent, interval, times):
    """(lost, recovery) per event time."""
    if not replies:
        return [(None, None) for _ in times]
    send = send_times(replies, max(sent or 0, max(replies)), interval)
    out = []
    for i, t in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else float("inf")
        window = sorted(s for s, ts in send.items() if t - interval <= ts < end)
        lost = [s for s in window if s not in replies]
        # The gap the event caused: a run of lost requests starting within ATTRIBUTE_S of it.
        caused = [s for s in lost if send[s] < t + ATTRIBUTE_S]
        if not caused:
            out.append((len(lost), 0.0))
            continue
        run_end = caused[0]
        while run_end + 1 in lost:
            run_end += 1
        after = [replies[s] for s in replies if s > run_end]
        out.append((len(lost), (min(after) - t) if after else None))
    return out


def ping(log, interval, times):
    replies, sent, received = parse(log)
    for lost, rec in events(replies, sent, interval, times):
        print("-" if lost is None else lost, "-" if rec is None else f"{rec:.3f}")
    print(sent if sent is not None else "-", received if received is not None else len(replies))


LOGGED = re.compile(r"^\[(\S+)Z \w+ .*\) failover \d+: traffic moved")


def logged(log, times):
    stamps = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LOGGED.match(line)
            if m:
                stamps.append(datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp())
    for i, t in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else float("inf")
        after = [x for x in stamps if t <= x < end]
        print(f"{after[0] - t:.3f}" if after else "-")


def main(argv):
    if len(argv) == 3 and argv[1] == "bond":
        bond(argv[2])
    elif len(argv) >= 4 and argv[1] == "log":
        logged(argv[2], [float(t) for t in argv[3:]])
    elif len(argv) >= 5 and argv[1] == "ping":
        ping(argv[2], float(argv[3]), [float(t) for t in argv[4:]])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
