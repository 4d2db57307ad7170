#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Host half of the benchmark (scripts/bench runs it after the guest): reads
# the raw fio JSON a scripts/bench-guest run left in DIR and writes
#   DIR/results.csv  one row per point (device, job, repeat) from fio's JSON
#   DIR/summary.csv  per device x job: median, min, max, relative stddev
#   DIR/results.md   the summary (tables: rows jobs, columns devices), the
#                    goal ratios with PASS/FAIL, the guest's CRC speed, the
#                    machine and accelerator; also printed on stdout
#   DIR/results.png  median IOPS per job and device with min-max error bars,
#                    and the goal ratios (needs matplotlib; skipped without)
# Every number comes from fio's JSON (or, for the CRC speed, crc_kunit's
# kernel log lines); nothing is estimated.
#
# Usage: scripts/bench-report.py [--no-plot] DIR
# Exit status: 0 if a summary was written (whatever the goals say), 1 if
# DIR has no usable fio results.

import csv
import json
import math
import os
import statistics
import sys

# Goals (issue 14), decided from the medians of the measured rounds (the
# warm-up round, repeat 0, is left out):
#   N1 rdif-noint >= 1.05 x null_blk-mb1 on the 4 KiB jobs;
#   N2 rdif-noint >= 0.95 x brd on the sequential jobs;
#   N3 rdif-crc16 >= 0.9 x its own limit (see pi_split) on the 4 KiB jobs;
#   N4 scsi_debug-dif1dix1's own PI work >= 1.3 x rdif-crc16's (reads);
#   N5 rdif-file-noint >= 0.9 x loop-dio, rdif-file-crc16 >= 0.7 x loop-dio;
#   N6 (real time, 2 vCPUs) 2 jobs / 1 job >= 1.8 for rdif-noint and rdif-crc16.
K4_JOBS = ["4k-randread-qd1-j1", "4k-randread-qd32-j1",
           "4k-randwrite-qd1-j1", "4k-randwrite-qd32-j1"]
SEQ_JOBS = ["64k-read-qd16-j1", "64k-write-qd16-j1",
            "1m-read-qd16-j1", "1m-write-qd16-j1"]
N6_PAIRS = [("4k-randread-qd32-j2", "4k-randread-qd32-j1"),
            ("4k-randwrite-qd32-j2", "4k-randwrite-qd32-j1")]

CSV_FIELDS = ["device", "job", "rw", "bs", "iodepth", "numjobs", "repeat",
              "phase", "rc", "fio_error", "iops", "bw_MBps", "clat_mean_us",
              "clat_p50_us", "clat_p99_us", "clat_p999_us", "lat_mean_us",
              "usr_cpu_pct", "sys_cpu_pct", "ctx", "runtime_ms", "json"]


def read_tsv(path, keyed=False):
    if not os.path.exists(path):
        return {} if keyed else []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if keyed:
        return {r["key"]: r["value"] for r in rows}
    return rows


def load_fio_json(path):
    """fio's JSON output, tolerating text fio printed before it."""
    with open(path, errors="replace") as f:
        text = f.read()
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def pct(clat, p):
    for k, v in (clat.get("percentile") or {}).items():
        if abs(float(k) - p) < 1e-6:
            return v / 1000.0
    return ""


def point_row(d, job, pt, out):
    """One results.csv row from a points.tsv row and its JSON."""
    row = {"device": pt["device"], "job": pt["job"], "rw": job["rw"],
           "bs": job["bs"], "iodepth": job["iodepth"],
           "numjobs": job["numjobs"], "repeat": pt["repeat"],
           "phase": pt["phase"], "rc": pt["rc"], "json": pt["json"]}
    path = os.path.join(d, pt["json"])
    try:
        data = load_fio_json(path)
        jobs = data["jobs"]
    except (OSError, ValueError, KeyError) as e:
        row["fio_error"] = "unreadable: %s" % e
        return row
    side = "write" if "write" in job["rw"] else "read"
    # group_reporting gives one entry; sum if fio ever gives more
    iops = sum(j[side]["iops"] for j in jobs)
    bw = sum(j[side]["bw_bytes"] for j in jobs)
    j0 = jobs[0]
    s = j0[side]
    row.update({
        "fio_error": max(j.get("error", 0) for j in jobs),
        "iops": "%.1f" % iops,
        "bw_MBps": "%.2f" % (bw / 1e6),
        "clat_mean_us": "%.3f" % (s["clat_ns"]["mean"] / 1000.0),
        "clat_p50_us": pct(s["clat_ns"], 50.0),
        "clat_p99_us": pct(s["clat_ns"], 99.0),
        "clat_p999_us": pct(s["clat_ns"], 99.9),
        "lat_mean_us": "%.3f" % (s["lat_ns"]["mean"] / 1000.0),
        "usr_cpu_pct": "%.1f" % j0.get("usr_cpu", 0.0),
        "sys_cpu_pct": "%.1f" % j0.get("sys_cpu", 0.0),
        "ctx": j0.get("ctx", ""),
        "runtime_ms": s.get("runtime", ""),
    })
    if row["fio_error"] == 0 and iops <= 0:
        row["fio_error"] = "no I/O"
    return row


def write_results_csv(d):
    jobs = {j["job"]: j for j in read_tsv(os.path.join(d, "jobs.tsv"))}
    points = read_tsv(os.path.join(d, "points.tsv"))
    rows = [point_row(d, jobs[p["job"]], p, d) for p in points if p["job"] in jobs]
    with open(os.path.join(d, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in CSV_FIELDS})
    return len(rows)


def good(r):
    return r["rc"] == "0" and str(r["fio_error"]) == "0" and r["iops"] != ""


def summarize(rows):
    """(device, job) -> stats of IOPS and bandwidth over the repeats."""
    acc = {}
    for r in rows:
        if good(r):
            acc.setdefault((r["device"], r["job"]), []).append(r)
    summ = {}
    for key, rs in acc.items():
        st = {"n": len(rs)}
        for f in ("iops", "bw_MBps", "clat_mean_us", "clat_p99_us"):
            v = [float(r[f]) for r in rs if r[f] != ""]
            if not v:
                continue
            med = statistics.median(v)
            st[f] = med
            st[f + "_min"] = min(v)
            st[f + "_max"] = max(v)
            st[f + "_rsd"] = (statistics.stdev(v) / statistics.mean(v) * 100
                              if len(v) > 1 and statistics.mean(v) else 0.0)
        summ[key] = st
    return summ


def fmt_num(v):
    if v >= 100000:
        return "%.0fk" % (v / 1000)
    if v >= 10000:
        return "%.1fk" % (v / 1000)
    if v >= 100:
        return "%.0f" % v
    return "%.1f" % v


def spread(st, f):
    """min-max range relative to the median, in percent"""
    if st[f] == 0:
        return 0.0
    return (st[f + "_max"] - st[f + "_min"]) / st[f] * 100


def ratio(summ, a, ja, b, jb):
    """median ratio a/b and its extreme range (min a / max b .. max a / min b)"""
    sa, sb = summ.get((a, ja)), summ.get((b, jb))
    if not sa or not sb or "iops" not in sa or "iops" not in sb or not sb["iops"]:
        return None
    lo = sa["iops_min"] / sb["iops_max"] if sb["iops_max"] else math.nan
    hi = sa["iops_max"] / sb["iops_min"] if sb["iops_min"] else math.nan
    return sa["iops"] / sb["iops"], lo, hi


def goal_defs():
    """list of (goal, label, (a, job a, b, job b), threshold or None): the
    goals that are a ratio of two medians"""
    g = []
    for j in K4_JOBS:
        g.append(("N1", "rdif-noint / null_blk-mb1, %s" % j,
                  ("rdif-noint", j, "null_blk-mb1", j), 1.05))
    for j in SEQ_JOBS:
        g.append(("N2", "rdif-noint / brd, %s" % j, ("rdif-noint", j, "brd", j), 0.95))
    for j in K4_JOBS:
        g.append(("N5", "rdif-file-noint / loop-dio, %s" % j,
                  ("rdif-file-noint", j, "loop-dio", j), 0.9))
        g.append(("N5", "rdif-file-crc16 / loop-dio, %s" % j,
                  ("rdif-file-crc16", j, "loop-dio", j), 0.7))
    for j in K4_JOBS:
        # The store without its journal (no crash guarantee, as loop):
        # context for N5.
        g.append(("-", "rdif-file-nj / loop-dio, %s" % j,
                  ("rdif-file-nj", j, "loop-dio", j), None))
        g.append(("-", "rdif-file-nj-crc16 / loop-dio, %s" % j,
                  ("rdif-file-nj-crc16", j, "loop-dio", j), None))
    for dev in ("rdif-noint", "rdif-crc16"):
        for j2, j1 in N6_PAIRS:
            g.append(("N6", "%s, %s / %s" % (dev, j2, j1), (dev, j2, dev, j1), 1.8))
    for j in K4_JOBS:
        g.append(("-", "rdif-crc16 / scsi_debug-dif1dix1, %s" % j,
                  ("rdif-crc16", j, "scsi_debug-dif1dix1", j), None))
        g.append(("-", "rdif-crc16 / rdif-noint, %s" % j,
                  ("rdif-crc16", j, "rdif-noint", j), None))
    return g


def goals(summ):
    """list of (goal, label, ratio tuple or None, threshold or None)"""
    return [(gid, label, ratio(summ, *k), thr) for gid, label, k, thr in goal_defs()]


def us(summ, dev, job):
    """guest microseconds per I/O: 1 / median IOPS (None if not measured)"""
    st = summ.get((dev, job))
    if not st or not st.get("iops"):
        return None
    return 1e6 / st["iops"]


def pi_split(summ, crc):
    """Goals N3 and N4 from the cost of each party's PI work, in guest
    microseconds per 4 KiB I/O (1 / median IOPS), t(device) for short:

    - one CRC pass: 4096 bytes at the guest's crc_t10dif speed (crc_kunit);
    - the block layer's share of a read: t(rdif-crc16-rc0) - t(rdif-noint):
      auto-PI's buffer and its verification after completion, while the
      device checks nothing (it only returns the stored PI);
    - the block layer's share of a write, at most: t(scsi_debug-dif1dix1) -
      t(scsi_debug-dif0) - one CRC pass: scsi_debug checks each written
      interval once (dif_verify), so what its PI writes cost beyond that
      pass is the block layer's generation and buffer, or less. (rdif's own
      configurations cannot split writes: the device always checks the PI a
      write carries);
    - a device's own share: t(with PI) - t(without) - the block share.

    N3: t(rdif-crc16) <= its limit / 0.9, the limit being t(rdif-noint) +
    block share + one CRC pass. N4 (reads only: on writes scsi_debug's own
    share is one pass by the construction above): scsi_debug's own share /
    rdif's >= 1.3. Returns (markdown lines, [(goal, label, value, threshold)])."""
    mbps = crc.get("crc_t10dif", {}).get(4096)
    crc_us = 4096 / mbps if mbps else None
    L = ["## N3, N4: where the time of PI goes (4 KiB random, one job)", "",
         "Guest microseconds per I/O (1 / median IOPS). One CRC16 pass over 4 KiB: %s "
         "at the guest's crc_kunit speed. Block share, read: rdif-crc16-rc0 - rdif-noint "
         "(auto-PI buffer and verification; the device checks nothing); write, an upper "
         "bound: scsi_debug-dif1dix1 - scsi_debug-dif0 - one CRC pass (scsi_debug checks "
         "each written interval once). Own share: a device's time with PI minus without "
         "(rdif-noint, scsi_debug-dif0) minus the block share. Limit: rdif-noint + block "
         "share + one CRC pass." % ("%.2f us" % crc_us if crc_us else "n/a"), ""]
    rows, verdicts = [], []
    f = lambda v: "-" if v is None else "%.2f" % v
    for j in K4_JOBS:
        t = {d: us(summ, d, j) for d in ("rdif-noint", "rdif-crc16", "rdif-crc16-rc0",
                                          "scsi_debug-dif0", "scsi_debug-dif1dix1")}
        read = "randread" in j
        blk = None
        if read and t["rdif-crc16-rc0"] and t["rdif-noint"]:
            blk = t["rdif-crc16-rc0"] - t["rdif-noint"]
        elif not read and crc_us and t["scsi_debug-dif1dix1"] and t["scsi_debug-dif0"]:
            blk = t["scsi_debug-dif1dix1"] - t["scsi_debug-dif0"] - crc_us
        own = (t["rdif-crc16"] - t["rdif-noint"] - blk
               if blk is not None and t["rdif-crc16"] and t["rdif-noint"] else None)
        sd_own = (t["scsi_debug-dif1dix1"] - t["scsi_debug-dif0"] - blk
                  if blk is not None and t["scsi_debug-dif1dix1"] and t["scsi_debug-dif0"]
                  else None)
        limit = (t["rdif-noint"] + blk + crc_us
                 if blk is not None and crc_us and t["rdif-noint"] else None)
        n3 = limit / t["rdif-crc16"] if limit and t["rdif-crc16"] else None
        rows.append([j, f(t["rdif-noint"]), f(t["rdif-crc16"]), f(blk), f(own),
                     f(own / crc_us) if own is not None and crc_us else "-",
                     f(t["scsi_debug-dif0"]), f(t["scsi_debug-dif1dix1"]), f(sd_own),
                     f(limit)])
        verdicts.append(("N3", "rdif-crc16 / its limit, %s" % j, n3, 0.9))
        if read:
            n4 = sd_own / own if sd_own is not None and own and own > 0 else None
            verdicts.append(("N4", "scsi_debug own PI work / rdif's, %s" % j, n4, 1.3))
    L += md_table(["job", "rdif-noint", "rdif-crc16", "block share", "rdif own",
                   "rdif own, CRC passes", "sd dif0", "sd dif1dix1", "sd own",
                   "rdif-crc16 limit"], rows)
    L.append("")
    return L, verdicts


def file_floor(summ, crc):
    """N5 with CRC16: the least a checked 4 KiB I/O can cost on the file
    store, in guest microseconds per I/O, t(device) for short:

    - the file store's own data path: t(rdif-file-nj) (journal=0, no
      metadata: bio pages straight to and from the file, as loop);
    - the block layer's auto-PI share, measured on rdif's memory store:
      reads t(rdif-crc16-rc0) - t(rdif-noint) (see pi_split); writes
      t(rdif-crc16) - t(rdif-crc16-dev): the same device and store, once
      with the block layer generating PI and the device checking it, once
      with the device generating it (the same CRC pass) and no payload;
    - one CRC pass of the device's own (check, or generation).

    floor = the sum; best ratio = t(loop-dio) / floor, against the goal's
    0.7. The file-store split beside it (rdif-file-nj-crc16-rc0 and -dev,
    if measured): reads t(-rc0) - t(rdif-file-nj), everything but the
    device's check (block share, metadata read, bounce); writes
    t(rdif-file-nj-crc16) - t(-dev), the block layer's share on the file
    store. Returns markdown lines (none if the devices were not measured)."""
    mbps = crc.get("crc_t10dif", {}).get(4096)
    crc_us = 4096 / mbps if mbps else None
    rows = []
    f = lambda v: "-" if v is None else "%.2f" % v
    for j in K4_JOBS:
        t = {d: us(summ, d, j) for d in (
            "loop-dio", "rdif-file-nj", "rdif-file-nj-crc16", "rdif-file-nj-crc16-rc0",
            "rdif-file-nj-crc16-dev", "rdif-noint", "rdif-crc16", "rdif-crc16-rc0",
            "rdif-crc16-dev")}
        read = "randread" in j
        a, b = (("rdif-crc16-rc0", "rdif-noint") if read else ("rdif-crc16", "rdif-crc16-dev"))
        blk = t[a] - t[b] if t[a] and t[b] else None
        fa, fb = (("rdif-file-nj-crc16-rc0", "rdif-file-nj") if read
                  else ("rdif-file-nj-crc16", "rdif-file-nj-crc16-dev"))
        fblk = t[fa] - t[fb] if t[fa] and t[fb] else None
        floor = (t["rdif-file-nj"] + blk + crc_us
                 if t["rdif-file-nj"] and blk is not None and crc_us else None)
        if not (floor and t["loop-dio"]):
            continue
        rows.append([j, f(t["loop-dio"]), f(t["loop-dio"] / 0.7), f(t["rdif-file-nj"]), f(blk),
                     f(crc_us), f(floor), "%.3f" % (t["loop-dio"] / floor),
                     f(t["rdif-file-nj-crc16"]), f(fblk)])
    if not rows:
        return []
    L = ["## N5 with CRC16: the file store's floor (4 KiB random, one job)", "",
         "Guest microseconds per I/O. Floor: rdif-file-nj (the file store's data "
         "path, as loop's) + the block layer's auto-PI share measured on memory "
         "(reads: rdif-crc16-rc0 - rdif-noint; writes: rdif-crc16 - rdif-crc16-dev) "
         "+ one CRC pass; the metadata's own read or write is left out, so the "
         "floor is below what any device that stores PI apart from its data can "
         "reach. Best ratio: loop-dio / floor (goal: 0.7). File split: reads "
         "rdif-file-nj-crc16-rc0 - rdif-file-nj (block share, metadata read and "
         "bounce); writes rdif-file-nj-crc16 - rdif-file-nj-crc16-dev (block share "
         "on the file store). A floor above rdif-file-nj-crc16 itself means that the "
         "memory share does not carry over (reads at depth 32, where the file store "
         "completes in batches): such a row proves nothing.", ""]
    L += md_table(["job", "loop-dio", "loop-dio / 0.7", "rdif-file-nj", "block share",
                   "CRC pass", "floor", "best ratio", "rdif-file-nj-crc16",
                   "file split"], rows)
    L.append("")
    return L


def paired(rows, a, ja, b, jb):
    """the ratio within each repeat round (both points measured minutes apart)"""
    iops = {(r["device"], r["job"], r["repeat"]): float(r["iops"]) for r in rows if good(r)}
    reps = sorted({r["repeat"] for r in rows}, key=int)
    out = []
    for rep in reps:
        x, y = iops.get((a, ja, rep)), iops.get((b, jb, rep))
        if x is not None and y:
            out.append(x / y)
    return out


def verdict(r, thr):
    if thr is None:
        return "report"
    if r is None:
        return "n/a"
    return "PASS" if r[0] >= thr else "FAIL"


def md_table(header, rows, left=1):
    """markdown table; the first `left` columns left-aligned, the rest right"""
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def kernel_splats(d):
    """warnings, oopses and PI errors in the guest's kernel log"""
    pats = ("WARNING:", "BUG:", "Oops", "protection error",
            "guard tag error", "ref tag error", "app tag error", "I/O error")
    out = []
    try:
        with open(os.path.join(d, "dmesg.txt"), errors="replace") as f:
            for line in f:
                if any(p in line for p in pats):
                    out.append(line.strip())
    except OSError:
        pass
    return out


def crc_figures(d):
    """{function: {len: MB/s}} from crc.tsv (crc_kunit's kernel log)"""
    out = {}
    for r in read_tsv(os.path.join(d, "crc.tsv")):
        out.setdefault(r["function"], {})[int(r["len"])] = int(r["MBps"])
    return out


def rdif_checks(d):
    """Device checks per interval, from rdif's debugfs counters of the run."""
    sd = os.path.join(d, "rdif-stats")
    if not os.path.isdir(sd):
        return []
    rows = []
    for f in sorted(os.listdir(sd)):
        c = {}
        with open(os.path.join(sd, f)) as fh:
            for line in fh:
                k, _, v = line.partition(" ")
                if v.strip().isdigit():
                    c[k] = int(v)
        per = lambda a, b: "%.3f" % (c[a] / c[b]) if c.get(b) else "-"
        rows.append([f[:-4], str(c.get("read_intervals", "-")),
                     per("checked_read", "read_intervals"),
                     str(c.get("write_intervals", "-")),
                     per("checked_write", "write_intervals"),
                     per("pract_generated", "write_intervals"),
                     str(sum(v for k, v in c.items() if "_errors_" in k))])
    L = ["rdif's counters over the whole run (debugfs stats): the device checks or "
         "generates each interval's PI at most once per request, so a PI format with "
         "read_check and auto-PI shows 1.000 check per interval read and written, and "
         "no PI errors (rdif-crc16-rc0 does not check reads; rdif-crc16-dev gets no PI "
         "with its writes and generates it).", ""]
    L += md_table(["device", "intervals read", "device checks per interval read",
                   "intervals written", "device checks per interval written",
                   "PI generated per interval written", "PI errors"], rows)
    L.append("")
    return L


def warmup_lines(summ, warm):
    """How far the warm-up round's points were from the measured medians."""
    dev = []
    for r in warm:
        st = summ.get((r["device"], r["job"]))
        if good(r) and st and st.get("iops"):
            dev.append(((float(r["iops"]) / st["iops"] - 1) * 100, r["device"], r["job"]))
    if not dev:
        return []
    dev.sort()
    lo, hi = dev[0], dev[-1]
    return ["Warm-up round (left out): its %d points were %.1f %% (%s, %s) to %+.1f %% "
            "(%s, %s) off the measured medians; median %+.1f %%."
            % (len(dev), lo[0], lo[1], lo[2], hi[0], hi[1], hi[2],
               statistics.median(x for x, _, _ in dev)), ""]


def report(d, rows, warm=()):
    guest = read_tsv(os.path.join(d, "guest.tsv"), keyed=True)
    host = read_tsv(os.path.join(d, "host.tsv"), keyed=True)
    devinfo = read_tsv(os.path.join(d, "devices.tsv"))
    jobs = [j["job"] for j in read_tsv(os.path.join(d, "jobs.tsv"))]
    order = ["rdif-noint", "rdif-crc16", "rdif-crc64", "null_blk-mb1",
             "null_blk-mb0", "brd", "rnull", "scsi_debug-dif0",
             "scsi_debug-dif1dix1"]
    present = {r["device"] for r in rows}
    devs = [x for x in order if x in present] + sorted(present - set(order))
    summ = summarize(rows)
    nfail = sum(1 for r in rows if not good(r))
    repeats = guest.get("repeats", "?")

    L = ["# rdif benchmark: %s" % host.get("started", os.path.basename(d)), ""]
    L.append("- mode: **%s** (repeats: %s, fio runtime %s s after %s s ramp, "
             "region %s)" % (host.get("mode", "?"), repeats,
                             guest.get("runtime_s", "?"), guest.get("ramp_s", "?"),
                             guest.get("region", "?")))
    L.append("- accelerator: **%s**, guest: %s vCPUs, %s MiB, kernel %s, CPU %s"
             % (guest.get("accel", "?").upper(), guest.get("guest_cpus", "?"),
                int(guest.get("guest_mem_kib", "0") or 0) // 1024,
                guest.get("guest_kernel", "?"), guest.get("guest_cpu_model", "?")))
    L.append("- host: %s (nproc %s), kernel %s, %s"
             % (host.get("cpu_model", "?"), host.get("nproc", "?"),
                host.get("kernel", "?"), host.get("hostname", "?")))
    L.append("- rdif: %s (rdif.ko sha256 %s), %s" % (host.get("git", "?"),
             guest.get("rdif_ko_sha256", "?"), guest.get("fio", "?")))
    L.append("- fio: %s; rw/bs/iodepth/numjobs per job below" % guest.get("fio_common", "?"))
    if host.get("guest_wall_s"):
        L.append("- wall clock: guest run %s s (boot included), whole script %s s "
                 "(set-up and build included; not the %s s spent waiting for other guests)"
                 % (host["guest_wall_s"], host.get("total_wall_s", "?"),
                    host.get("waited_s", "?")))
    flavour = host.get("kernel_flavour", "?")
    dbg = guest.get("kernel_debug", "unknown") or "unknown"
    if dbg in ("none", "unknown"):
        L.append("- guest kernel: %s kernel, debugging options that slow I/O paths: %s"
                 % (flavour, dbg))
    else:
        L.append("- guest kernel: %s kernel, debugging options: %s (lock debugging and "
                 "lockdep cost every lock operation: numbers are those of this debug "
                 "kernel)" % (flavour, dbg))
    L.append("- points: %d, failed or unusable: %d" % (len(rows), nfail))
    splats = kernel_splats(d)
    if splats:
        L.append("- guest kernel log: %d warning/error line(s), first: `%s` (see dmesg.txt)"
                 % (len(splats), splats[0]))
    L.append("")

    if devinfo:
        L.append("## Devices")
        L.append("")
        L += md_table(["device", "dev", "lbs", "pbs", "size", "integrity",
                       "wg/rv", "hw queues", "nr_requests", "scheduler", "note"],
                      [[x["device"], x["dev"], x["logical_block_size"],
                        x["physical_block_size"],
                        "%d MiB" % (int(x["size_bytes"]) >> 20), x["integrity"],
                        "%s/%s" % (x["write_generate"], x["read_verify"]),
                        x["hw_queues"], x["nr_requests"], x["scheduler"], x["note"]]
                       for x in devinfo], left=11)
        L.append("")

    crc = crc_figures(d)
    L.append("## Guest in-kernel CRC speed (crc_kunit, MB/s)")
    L.append("")
    if crc:
        lens = sorted({n for f in crc.values() for n in f})
        L += md_table(["function"] + ["len=%d" % n for n in lens],
                      [[f] + [crc[f].get(n, "") for n in lens] for f in sorted(crc)])
        L.append("")
        for f, name in (("crc_t10dif", "CRC16 T10-DIF"), ("crc64_nvme", "CRC64-NVMe")):
            if 4096 in crc.get(f, {}) and crc[f][4096]:
                mbs = crc[f][4096]
                L.append("- %s over 4096 bytes: %d MB/s, i.e. %.2f us per 4 KiB block "
                         "(at most %.0f blocks/s per CPU for the guard alone)"
                         % (name, mbs, 4096 / mbs, mbs * 1e6 / 4096))
        mbs = crc.get("crc32c", {}).get(4096)
        if mbs:
            L.append("- CRC32C over 4096 bytes (the file store's journal checksum, once "
                     "per journaled write): %d MB/s, i.e. %.2f us per 4 KiB" % (mbs, 4096 / mbs))
    else:
        L.append("(no crc_kunit figures: see crc_kunit.log)")
    L.append("")

    def cell(dev, job, f):
        st = summ.get((dev, job))
        if not st or f not in st:
            return "-"
        if st["n"] == 1:
            return fmt_num(st[f])
        return "%s ±%.0f%%" % (fmt_num(st[f]), spread(st, f) / 2)

    L.append("## Median IOPS (± half the min-max range, %% of the median; repeats: %s)" % repeats)
    L.append("")
    L.append("Rows: fio jobs (4k random: iodepth qd, numjobs j; 64k/1m: sequential); "
             "columns: devices.")
    L.append("")
    L += md_table(["job"] + devs, [[j] + [cell(x, j, "iops") for x in devs] for j in jobs])
    L.append("")
    L.append("## Median bandwidth, MB/s (± half the min-max range)")
    L.append("")
    L += md_table(["job"] + devs, [[j] + [cell(x, j, "bw_MBps") for x in devs] for j in jobs])
    L.append("")
    L.append("## Median completion latency p99, us")
    L.append("")
    L += md_table(["job"] + devs, [[j] + [fmt_num(summ[(x, j)]["clat_p99_us"])
                                           if (x, j) in summ and "clat_p99_us" in summ[(x, j)]
                                           else "-" for x in devs] for j in jobs])
    L.append("")
    L += warmup_lines(summ, warm)
    multi = [(st["iops_rsd"], k) for k, st in summ.items() if st["n"] > 1 and "iops_rsd" in st]
    if multi:
        worst = max(multi)
        L.append("IOPS relative standard deviation over the repeats: median %.1f%%, "
                 "largest %.1f%% (%s, %s)" % (statistics.median(v for v, _ in multi),
                                             worst[0], worst[1][0], worst[1][1]))
        L.append("")

    L.append("## Goals")
    L.append("")
    L.append("value: ratio of the median IOPS of the measured rounds; spread: half "
             "the min-max range of each side, % of its median (numerator / "
             "denominator); per round: the ratio within each round. Goals without "
             "a threshold are shown for context. N6 is measured in real time on "
             "2 vCPUs (BENCH=scaling), the others under icount.")
    L.append("")
    grows = []

    def side(dev, job):
        st = summ.get((dev, job))
        return "%.1f" % (spread(st, "iops") / 2) if st and "iops" in st and st["n"] > 1 else "-"
    for gid, label, k, thr in goal_defs():
        r = ratio(summ, *k)
        if r is None:
            grows.append([gid, label, None])
            continue
        per = ", ".join("%.3f" % x for x in paired(rows, *k)) or "-"
        spr = "%s / %s" % (side(k[0], k[1]), side(k[2], k[3]))
        grows.append([gid, label, "n/a" if r is None else "%.3f" % r[0], spr, per,
                      "" if thr is None else ">= %g" % thr, verdict(r, thr)])
    split, nv = pi_split(summ, crc)
    for gid, label, v, thr in nv:
        if v is None:
            grows.append([gid, label, None])
            continue
        grows.append([gid, label, "%.3f" % v, "", "", ">= %g" % thr,
                      "PASS" if v >= thr else "FAIL"])
    # Pairs this run did not measure are only counted below.
    L += md_table(["goal", "ratio", "value", "spread %", "per round", "goal", "verdict"],
                  [g for g in grows if g[2] is not None], left=2)
    L.append("")
    for gid in ("N1", "N2", "N3", "N4", "N5", "N6"):
        vs = [g[-1] if g[2] is not None else "n/a" for g in grows if g[0] == gid]
        L.append("- %s: %s" % (gid, "PASS" if vs and all(v == "PASS" for v in vs)
                               else "FAIL" if "FAIL" in vs else "not measured in this run"
                               if all(v == "n/a" for v in vs) else
                               "incomplete (%d of %d measured, all PASS)"
                               % (sum(v == "PASS" for v in vs), len(vs))))
    L.append("")
    L += split
    L += file_floor(summ, crc)
    L += rdif_checks(d)
    if (guest.get("accel") or "").lower() == "tcg":
        L.append("Under TCG every CPU instruction is emulated: absolute numbers, and "
                 "ratios between paths of different instruction mixes (CRC "
                 "instructions, memcpy), differ from bare metal or KVM.")
        L.append("")
    failed = [r for r in rows if not good(r)]
    if failed:
        L.append("## Failed points")
        L.append("")
        for r in failed:
            L.append("- repeat %s %s on %s: rc %s, fio error %s (%s)"
                     % (r["repeat"], r["job"], r["device"], r["rc"], r["fio_error"], r["json"]))
        L.append("")
    return "\n".join(L), summ, devs, jobs


def plot(d, summ, devs, jobs, gl):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench-report: matplotlib not available, no plot (scripts/setup installs it)",
              file=sys.stderr)
        return None
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(14, len(jobs) * 1.6), 11),
                                  gridspec_kw={"height_ratios": [3, 2]})
    n = len(devs)
    width = 0.8 / max(n, 1)
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    for i, dev in enumerate(devs):
        xs, ys, lo, hi = [], [], [], []
        for k, j in enumerate(jobs):
            st = summ.get((dev, j))
            if not st or "iops" not in st:
                continue
            xs.append(k - 0.4 + width * (i + 0.5))
            ys.append(st["iops"])
            lo.append(st["iops"] - st["iops_min"])
            hi.append(st["iops_max"] - st["iops"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=1.5, label=dev, color=cmap(i % (10 if n <= 10 else 20)),
               error_kw={"elinewidth": 0.8})
    ax.set_yscale("log")
    ax.set_xticks(range(len(jobs)))
    ax.set_xticklabels(jobs, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("median IOPS (log), error bars: min..max")
    ax.legend(fontsize=8, ncol=min(n, 9), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.grid(axis="y", which="both", alpha=0.3)

    labels, vals, errs, colors, thrs = [], [], [[], []], [], []
    for gid, label, r, thr in gl:
        if r is None:
            continue
        labels.append("%s %s" % (gid, label.replace("rdif-", "").replace("-j1", "")
                                 .replace("scsi_debug-dif1dix1", "sd-dix")))
        vals.append(r[0])
        errs[0].append(max(r[0] - r[1], 0))
        errs[1].append(max(r[2] - r[0], 0))
        colors.append("grey" if thr is None else ("tab:green" if r[0] >= thr else "tab:red"))
        thrs.append(thr)
    xs = range(len(vals))
    ax2.bar(xs, vals, yerr=errs, color=colors, capsize=1.5)
    for x, t in zip(xs, thrs):
        if t is not None:
            ax2.plot([x - 0.4, x + 0.4], [t, t], color="black", linewidth=1)
    ax2.set_yscale("log")
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(labels, rotation=60, ha="right", fontsize=6)
    ax2.set_ylabel("ratio (black: goal; green pass, red fail, grey: context)")
    ax2.grid(axis="y", which="both", alpha=0.3)
    guest = read_tsv(os.path.join(d, "guest.tsv"), keyed=True)
    host = read_tsv(os.path.join(d, "host.tsv"), keyed=True)
    fig.suptitle("rdif benchmark %s, %s, repeats: %s, fio runtime %s s, %s" % (
        host.get("started", ""), guest.get("accel", "?").upper(), guest.get("repeats", "?"),
        guest.get("runtime_s", "?"), host.get("mode", "")))
    fig.tight_layout()
    path = os.path.join(d, "results.png")
    fig.savefig(path, dpi=110)
    return path


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    noplot = "--no-plot" in argv
    if len(args) != 1:
        print("usage: bench-report.py [--no-plot] DIR", file=sys.stderr)
        return 2
    d = args[0]
    if write_results_csv(d) == 0:
        print("bench-report: no fio results in %s" % d, file=sys.stderr)
        return 1
    with open(os.path.join(d, "results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    # Round 0 is the warm-up: kept in results.csv, left out of everything else.
    warm = [r for r in rows if r["repeat"] == "0"]
    rows = [r for r in rows if r["repeat"] != "0"]
    if not rows:
        print("bench-report: only warm-up results in %s" % d, file=sys.stderr)
        return 1
    text, summ, devs, jobs = report(d, rows, warm)
    with open(os.path.join(d, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device", "job", "n", "iops_median", "iops_min", "iops_max",
                    "iops_rsd_pct", "bw_MBps_median", "bw_MBps_min", "bw_MBps_max",
                    "clat_p99_us_median"])
        for (dev, job), st in sorted(summ.items()):
            w.writerow([dev, job, st["n"], "%.1f" % st["iops"], "%.1f" % st["iops_min"],
                        "%.1f" % st["iops_max"], "%.2f" % st["iops_rsd"],
                        "%.2f" % st["bw_MBps"], "%.2f" % st["bw_MBps_min"],
                        "%.2f" % st["bw_MBps_max"], st.get("clat_p99_us", "")])
    png = None if noplot else plot(d, summ, devs, jobs, goals(summ))
    if png:
        text += "\n![results](results.png)\n"
    with open(os.path.join(d, "results.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    if png:
        print("\nplot: %s" % png)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
